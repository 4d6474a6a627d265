#!/usr/bin/env bash
# Makes sure a MongoDB-wire-compatible server answers on 127.0.0.1 for the
# storage-mongo tests, without needing mongod on the machine.
#
#   mongo-test-server.sh          start SecantusDB unless something answers
#   mongo-test-server.sh stop     stop the SecantusDB this script started
#
# SecantusDB (PyPI, GPL-2.0) runs only as a separate test process: nothing
# links it. It is installed once into a venv in the shared cargo target dir.
# Idempotent: a server that already answers (SecantusDB or a real mongod) is
# left alone, and an installed venv is reused.
#
# MONGO_TEST_PORT picks another port than 27017 (then point MONGODB_URL, which
# the tests read, at it). Data and log live in the cargo target dir.
set -euo pipefail

crate_dir="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$crate_dir/../target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"

port="${MONGO_TEST_PORT:-27017}"
version="0.7.0b3"
venv="$target_dir/mongo-venv"
data_dir="$target_dir/mongo-test-data"
pid_file="$data_dir/secantusd.pid"
log_file="$target_dir/mongo-test-server.log"

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

stop() {
  if [ ! -f "$pid_file" ]; then
    echo "mongo-test-server: nothing started by this script"
    return 0
  fi
  local pid
  pid="$(cat "$pid_file")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "mongo-test-server: stopping SecantusDB (pid $pid)"
    kill -TERM "$pid"
    # It flushes WiredTiger on SIGTERM, which takes a few seconds.
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
  fi
  rm -f "$pid_file"
}

install() {
  if [ -x "$venv/bin/secantusd-py" ] && "$venv/bin/python" -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('SecantusDB') != '$version')" 2>/dev/null; then
    return 0
  fi
  echo "mongo-test-server: installing SecantusDB $version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "SecantusDB==$version"
}

start() {
  if answers; then
    echo "mongo-test-server: a server already answers on 127.0.0.1:$port"
    return 0
  fi
  install
  mkdir -p "$data_dir"
  echo "mongo-test-server: starting SecantusDB on 127.0.0.1:$port (log: $log_file)"
  nohup "$venv/bin/secantusd-py" --host 127.0.0.1 --port "$port" \
    --storage-path "$data_dir/db" --log-level WARNING \
    >"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
  for _ in $(seq 1 300); do
    if answers; then
      echo "mongo-test-server: up"
      return 0
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      echo "mongo-test-server: SecantusDB exited; last log lines:" >&2
      tail -n 20 "$log_file" >&2
      rm -f "$pid_file"
      return 1
    fi
    sleep 0.2
  done
  echo "mongo-test-server: SecantusDB did not answer on 127.0.0.1:$port within 60 s" >&2
  return 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
