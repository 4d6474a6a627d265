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
//! statement succeeded, and its next statement (a transaction too) takes
//! one of them instead of going back to the pool. The connections stay the
//! pool's (it counts them as in use), so:
//! - only a pool whose hand-out check the store knows keeps any: its own
//!   (`connect`, `open`), whose check pings a connection idle for
//!   [`KEEP_FOR`] or longer, exactly the age past which a kept one goes
//!   back; a merchant's pool only when asked (`keep_connections`), since
//!   its `test_before_acquire`, `before_acquire` and `after_release` do not
//!   run on a kept connection;
//! - a connection is kept only after its statement completed (the
//!   protocol is at rest); one whose statement failed or whose future was
//!   dropped half way goes back to sqlx, which pings it and drops it if it
//!   is broken;
//! - one kept for [`KEEP_FOR`] without use goes back to the pool, where
//!   sqlx's own idle handling applies (so an idle store holds nothing, and
//!   a connection handed out again after a pause is checked first);
//! - one out of the pool for longer than the pool's `max_lifetime` (or
//!   [`MAX_OUT`]) goes back to it at its next use, paying one ping, so the
//!   pool's lifetime rules apply to a busy store's connections too;
//! - one is kept only while the pool still has an idle connection or room
//!   to open one: kept connections never leave the pool with nothing to
//!   hand out. When the pool has neither, the store hands its connection
//!   back before its call returns;
//! - `Pool::close` gets them all back at once: a watcher task releases
//!   them as soon as the pool starts closing;
//! - at most [`MAX_KEPT`] of them per store, and never more than half the
//!   pool.
//!
//! Without a Tokio runtime when the store is made (no task to watch the
//! pool), nothing is kept. The runtime's handle is kept: a store dropped
//! outside it hands its connections back through it.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// How long a kept connection may wait for the next statement before it
/// goes back to the pool. The store's own pool hands out a connection
/// idle for less than this without a liveness ping
/// ([`crate::dialect::PING_IF_IDLE_FOR`]): a kept one is never older.
pub(crate) const KEEP_FOR: Duration = crate::dialect::PING_IF_IDLE_FOR;

/// The longest a connection stays out of the pool between two of its
/// returns, whatever the pool's `max_lifetime`: a busy store gives each
/// back (one ping) at least this often, so the pool's `max_lifetime` and
/// its other checks still see it.
pub(crate) const MAX_OUT: Duration = Duration::from_secs(10);

/// A pool whose `max_lifetime` is shorter than this keeps nothing (so
/// the watcher never checks more often).
const MIN_OUT: Duration = Duration::from_millis(10);

/// At most this many connections are kept per store.
pub(crate) const MAX_KEPT: usize = 4;

/// A connection out of the pool, and when it was taken from it.
pub(crate) struct Out<DB: Database> {
    pub(crate) conn: PoolConnection<DB>,
    pub(crate) taken_at: Instant,
}

/// The kept connections of one store (shared by its clones).
pub(crate) struct Warm<DB: Database> {
    kept: Mutex<Kept<DB>>,
    max: usize,
    /// How long a connection may stay out of the pool.
    max_out: Duration,
    pool: Pool<DB>,
    /// The runtime the store was made in: releasing a connection spawns a
    /// task there, also when the store is dropped outside it.
    runtime: tokio::runtime::Handle,
}

struct Kept<DB: Database> {
    /// Each with the last time its statement completed.
    conns: Vec<(Out<DB>, Instant)>,
    /// False once the watcher is gone (the pool closed, or the runtime
    /// that ran it stopped): nothing is kept any more.
    open: bool,
}

impl<DB: Database> Warm<DB> {
    /// The kept connections of a store on `pool`, keeping up to `wanted`
    /// (capped at [`MAX_KEPT`] and half the pool); `None` when nothing can
    /// be kept.
    pub(crate) fn new(pool: &Pool<DB>, wanted: usize) -> Option<Arc<Self>> {
        let options = pool.options();
        let half = usize::try_from(options.get_max_connections() / 2).unwrap_or(0);
        let max = wanted.min(MAX_KEPT).min(half);
        if max == 0 || pool.is_closed() {
            return None;
        }
        let max_out = options
            .get_max_lifetime()
            .map_or(MAX_OUT, |l| l.min(MAX_OUT));
        if max_out < MIN_OUT {
            // Every connection would be too old to keep.
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let warm = Arc::new(Warm {
            kept: Mutex::new(Kept {
                conns: Vec::with_capacity(max),
                open: true,
            }),
            max,
            max_out,
            pool: pool.clone(),
            runtime: runtime.clone(),
        });
        runtime.spawn(watch(
            Arc::downgrade(&warm),
            pool.close_event(),
            KEEP_FOR.min(max_out),
        ));
        Some(warm)
    }

    /// A connection for a statement: a kept one if one is fresh (stale
    /// ones go back to the pool), else one from the pool.
    pub(crate) async fn take_or_acquire(&self) -> Result<Out<DB>, sqlx::Error> {
        if let Some(out) = self.take() {
            return Ok(out);
        }
        acquire(&self.pool).await
    }

    fn take(&self) -> Option<Out<DB>> {
        let mut stale = Vec::new();
        let taken = {
            let mut kept = self.lock();
            loop {
                match kept.conns.pop() {
                    Some((out, used)) if !self.is_stale(&out, used) => break Some(out),
                    Some(old) => stale.push(old),
                    None => break None,
                }
            }
        };
        self.release(stale);
        taken
    }

    fn is_stale(&self, out: &Out<DB>, used: Instant) -> bool {
        used.elapsed() >= KEEP_FOR || out.taken_at.elapsed() >= self.max_out
    }

    /// Keeps `out` (its statement completed) if there is room and the pool
    /// still has a connection for others; else hands it back. Returns it
    /// when the pool has nothing left to hand out, for the caller to drop
    /// at once (sqlx then hands it back, its release ping in a task): a
    /// caller waiting in the pool gets it, not this store's next call.
    pub(crate) fn keep(&self, out: Out<DB>) -> Option<PoolConnection<DB>> {
        let pool_full = self.pool.num_idle() == 0
            && self.pool.size() >= self.pool.options().get_max_connections();
        if !pool_full && out.taken_at.elapsed() < self.max_out {
            let mut kept = self.lock();
            if kept.open && kept.conns.len() < self.max {
                kept.conns.push((out, Instant::now()));
                return None;
            }
        }
        if pool_full {
            return Some(out.conn);
        }
        self.release(vec![(out, Instant::now())]);
        None
    }

    /// Hands back every connection that is stale.
    fn release_stale(&self) {
        let old = {
            let mut kept = self.lock();
            let (old, fresh) = std::mem::take(&mut kept.conns)
                .into_iter()
                .partition(|(out, used)| self.is_stale(out, *used));
            kept.conns = fresh;
            old
        };
        self.release(old);
    }

    /// Keeps nothing from now on and hands everything back.
    fn shut(&self) {
        let all = {
            let mut kept = self.lock();
            kept.open = false;
            std::mem::take(&mut kept.conns)
        };
        self.release(all);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept<DB>> {
        // Nothing here can leave the list half updated: a panic elsewhere
        // while it was held does not make it wrong.
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands connections back to their pool. sqlx does that from a
    /// spawned task, on the current runtime or else on the store's.
    fn release(&self, conns: Vec<(Out<DB>, Instant)>) {
        if conns.is_empty() {
            return;
        }
        let _entered = tokio::runtime::Handle::try_current()
            .is_err()
            .then(|| self.runtime.enter());
        drop(conns);
    }
}

/// A connection from `pool`, noting when it was taken.
pub(crate) async fn acquire<DB: Database>(pool: &Pool<DB>) -> Result<Out<DB>, sqlx::Error> {
    let conn = pool.acquire().await?;
    Ok(Out {
        conn,
        taken_at: Instant::now(),
    })
}

impl<DB: Database> Drop for Warm<DB> {
    fn drop(&mut self) {
        let kept = self.kept.get_mut().unwrap_or_else(|p| p.into_inner());
        let all = std::mem::take(&mut kept.conns);
        self.release(all);
    }
}

/// Hands kept connections back once they are stale (checked every
/// `every`), and all of them as soon as the pool starts closing (its
/// `close` waits for them). Ends with the store; if its runtime stops
/// first, the store keeps nothing from then on.
async fn watch<DB: Database>(
    warm: Weak<Warm<DB>>,
    closed: sqlx::pool::CloseEvent,
    every: Duration,
) {
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
        if tokio::time::timeout(every, &mut closed).await.is_ok() {
            return;
        }
        match shut.0.upgrade() {
            Some(warm) => warm.release_stale(),
            None => return,
        }
    }
}
