//! Counting the merchant server's database round trips at the wire: a TCP
//! relay between the server and its database that forwards every byte
//! unchanged and counts, on each connection, how many times the client
//! starts talking again after the database answered. That is the number of
//! request/response exchanges, whatever the protocol (PostgreSQL, MySQL,
//! MongoDB) and whatever the client library does under the hood (prepares,
//! `BEGIN`/`COMMIT`, pings, handshakes, heartbeats): nothing is estimated
//! from our own code.
//!
//! The relay adds a hop to every round trip, so it is used only for a
//! separate counting pass, never while latency and throughput are measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use refund_core::BoxError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    addr: SocketAddr,
    round_trips: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free local port and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self, BoxError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let round_trips = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&round_trips);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, counter).await;
                    }
                });
            }
        });
        Ok(Relay {
            addr,
            round_trips,
            task,
        })
    }

    /// Where clients connect instead of the database.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Round trips counted so far, over every connection.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `BENCH_RELAY_DEBUG` set: print each read, to see what is counted.
fn debug() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("BENCH_RELAY_DEBUG").is_some())
}

/// Forwards both ways until either side closes. A round trip is counted
/// when the client sends after the server last spoke (or first).
async fn relay(client: TcpStream, server: TcpStream, round_trips: Arc<AtomicU64>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // True while the server spoke last.
    let server_spoke = Arc::new(AtomicBool::new(true));
    let spoke = Arc::clone(&server_spoke);
    let upstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if spoke.swap(false, Ordering::AcqRel) {
                round_trips.fetch_add(1, Ordering::Relaxed);
            }
            if debug() {
                eprintln!(
                    "RELAY c->s {n} {:?}",
                    String::from_utf8_lossy(&buffer[..n.min(120)])
                );
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            server_spoke.store(true, Ordering::Release);
            if debug() {
                eprintln!(
                    "RELAY s->c {n} {:?}",
                    String::from_utf8_lossy(&buffer[..n.min(60)])
                );
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// `url` with its host and port replaced by `relay`, and the address it
/// named (its port, or the scheme's default). Errors never repeat the URL.
pub async fn through(url: &str, relay: SocketAddr) -> Result<(String, SocketAddr), BoxError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("the database URL has no scheme")?;
    let default_port = match scheme {
        "postgres" | "postgresql" => 5432,
        "mysql" | "mariadb" => 3306,
        "mongodb" => 27017,
        _ => return Err("round trips are counted on postgres, mysql and mongodb URLs".into()),
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    if host_port.contains(',') {
        return Err("round trips are counted against a single database host".into());
    }
    let target = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    let target = tokio::net::lookup_host(target)
        .await?
        .next()
        .ok_or("the database host does not resolve")?;
    let userinfo = userinfo.map_or(String::new(), |u| format!("{u}@"));
    let mut relayed = format!("{scheme}://{userinfo}{relay}{tail}");
    if scheme == "mongodb" && !relayed.contains("directConnection") {
        // Talk to this address only (not to hosts a server advertises).
        relayed.push(if relayed.contains('?') { '&' } else { '?' });
        relayed.push_str("directConnection=true");
    }
    Ok((relayed, target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_pointed_at_the_relay() {
        let relay: SocketAddr = "127.0.0.1:4444".parse().unwrap();
        let (url, target) = through("postgres://postgres@127.0.0.1:5432/db_1", relay)
            .await
            .unwrap();
        assert_eq!(url, "postgres://postgres@127.0.0.1:4444/db_1");
        assert_eq!(target, "127.0.0.1:5432".parse().unwrap());
        let (url, target) = through("mysql://root@127.0.0.1/test?x=1", relay)
            .await
            .unwrap();
        assert_eq!(url, "mysql://root@127.0.0.1:4444/test?x=1");
        assert_eq!(target.port(), 3306);
        let (url, _) = through("mongodb://127.0.0.1:27017/bench", relay)
            .await
            .unwrap();
        assert_eq!(url, "mongodb://127.0.0.1:4444/bench?directConnection=true");
        assert!(through("sqlite://x.db", relay).await.is_err());
    }

    #[tokio::test]
    async fn each_exchange_is_one_round_trip() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = echo.accept().await.unwrap();
            let mut buffer = [0u8; 16];
            while let Ok(n) = socket.read(&mut buffer).await {
                if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        });
        let relay = Relay::start(target).await.unwrap();
        let mut client = TcpStream::connect(relay.addr()).await.unwrap();
        for _ in 0..3 {
            client.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            client.read_exact(&mut answer).await.unwrap();
        }
        assert_eq!(relay.round_trips(), 3);
    }
}
