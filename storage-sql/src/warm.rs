//! Connections the store keeps between its statements, so that sqlx's
//! release ping is not paid after every one.
//!
//! sqlx 0.8 pings every connection handed back to its pool
//! (`PoolConnection::return_to_pool`; hard-wired, no option turns it off):
//! one more round trip after each store call, off the request's path but
//! not off the CPU of the server or the database. A refund makes three
//! store calls back to back (read, `begin_refund`, `finish_refund`), so on
//! a network database half of its exchanges were those pings.
//!
//! Here a store keeps a few of its pool's connections checked out after a
//! statement succeeded, and its next statement takes one of them instead of
//! going back to the pool. The connections stay the pool's (it counts them
//! as in use), so:
//! - a connection is kept only after its statement completed (the
//!   protocol is at rest); one whose statement failed or whose future was
//!   dropped half way goes back to sqlx, which pings it and drops it if it
//!   is broken;
//! - one kept for [`KEEP_FOR`] without use goes back to the pool, where
//!   sqlx's own idle handling applies (so an idle store holds nothing, and
//!   a connection handed out again after a pause is pinged first, as the
//!   store's pool options ask);
//! - `Pool::close` gets them all back at once: a watcher task releases
//!   them as soon as the pool starts closing;
//! - at most [`MAX_KEPT`] of them, and never more than half the pool,
//!   so the pool always has connections for everyone else.
//!
//! Without a Tokio runtime when the store is made (no task to watch the
//! pool), nothing is kept.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// How long a kept connection may wait for the next statement before it
/// goes back to the pool. The store's pool options hand out a connection
/// idle for less than this without a liveness ping
/// ([`crate::dialect::PING_IF_IDLE_FOR`]): a kept one is never older.
pub(crate) const KEEP_FOR: Duration = crate::dialect::PING_IF_IDLE_FOR;

/// At most this many connections are kept per store.
pub(crate) const MAX_KEPT: usize = 4;

/// The kept connections of one store (shared by its clones).
pub(crate) struct Warm<DB: Database> {
    kept: Mutex<Kept<DB>>,
    max: usize,
}

struct Kept<DB: Database> {
    conns: Vec<(PoolConnection<DB>, Instant)>,
    /// False once the watcher is gone (the pool closed, or the runtime
    /// that ran it stopped): nothing is kept any more.
    open: bool,
}

impl<DB: Database> Warm<DB> {
    /// The kept connections of a store on `pool`, keeping up to `wanted`
    /// (capped at half the pool); `None` when nothing can be kept.
    pub(crate) fn new(pool: &Pool<DB>, wanted: usize) -> Option<Arc<Self>> {
        let half = usize::try_from(pool.options().get_max_connections() / 2).unwrap_or(0);
        let max = wanted.min(MAX_KEPT).min(half);
        if max == 0 || pool.is_closed() {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let warm = Arc::new(Warm {
            kept: Mutex::new(Kept {
                conns: Vec::with_capacity(max),
                open: true,
            }),
            max,
        });
        runtime.spawn(watch(Arc::downgrade(&warm), pool.close_event()));
        Some(warm)
    }

    /// A kept connection, if one is fresh; stale ones go back to the pool.
    pub(crate) fn take(&self) -> Option<PoolConnection<DB>> {
        let mut stale = Vec::new();
        let taken = {
            let mut kept = self.lock();
            loop {
                match kept.conns.pop() {
                    Some((conn, since)) if since.elapsed() < KEEP_FOR => break Some(conn),
                    Some(old) => stale.push(old),
                    None => break None,
                }
            }
        };
        release(stale);
        taken
    }

    /// Keeps `conn` (its statement completed) if there is room, else hands
    /// it back to the pool.
    pub(crate) fn keep(&self, conn: PoolConnection<DB>) {
        let mut kept = self.lock();
        if kept.open && kept.conns.len() < self.max {
            kept.conns.push((conn, Instant::now()));
            return;
        }
        drop(kept);
        release(vec![(conn, Instant::now())]);
    }

    /// Hands back every connection kept for `at_least` or longer.
    fn release_older_than(&self, at_least: Duration) {
        let old = {
            let mut kept = self.lock();
            let (old, fresh) = std::mem::take(&mut kept.conns)
                .into_iter()
                .partition(|(_, since)| since.elapsed() >= at_least);
            kept.conns = fresh;
            old
        };
        release(old);
    }

    /// Keeps nothing from now on and hands everything back.
    fn shut(&self) {
        let all = {
            let mut kept = self.lock();
            kept.open = false;
            std::mem::take(&mut kept.conns)
        };
        release(all);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<DB>> {
        // Nothing here can leave the list half updated: a panic elsewhere
        // while it was held does not make it wrong.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Hands connections back to their pool. sqlx does that from a spawned
/// task, which needs a runtime; without one (the last store dropped after
/// its runtime), they are closed instead.
fn release<DB: Database>(conns: Vec<(PoolConnection<DB>, Instant)>) {
    if conns.is_empty() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        drop(conns);
    } else {
        for (conn, _) in conns {
            drop(conn.detach());
        }
    }
}

impl<DB: Database> Drop for Warm<DB> {
    fn drop(&mut self) {
        let kept = self.kept.get_mut().unwrap_or_else(|p| p.into_inner());
        release(std::mem::take(&mut kept.conns));
    }
}

/// Hands kept connections back once they have waited [`KEEP_FOR`], and all
/// of them as soon as the pool starts closing (its `close` waits for
/// them). Ends with the store; if its runtime stops first, the store keeps
/// nothing from then on.
async fn watch<DB: Database>(warm: Weak<Warm<DB>>, closed: sqlx::pool::CloseEvent) {
    /// Shuts the store's keeping when the watcher ends, however it ends.
    struct Shut<DB: Database>(Weak<Warm<DB>>);
    impl<DB: Database> Drop for Shut<DB> {
        fn drop(&mut self) {
            if let Some(warm) = self.0.upgrade() {
                warm.shut();
            }
        }
    }
    let shut = Shut(warm);
    let mut closed = std::pin::pin!(closed);
    loop {
        if tokio::time::timeout(KEEP_FOR, &mut closed).await.is_ok() {
            return;
        }
        match shut.0.upgrade() {
            Some(warm) => warm.release_older_than(KEEP_FOR),
            None => return,
        }
    }
}
