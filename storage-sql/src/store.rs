//! [`SqlPaymentStore`]: refund-core's [`PaymentStore`] on a sqlx pool, one
//! implementation for every [`Dialect`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use refund_core::{
    capped_limit, Actor, CancelEntry, Payment, PaymentStore, PendingCursor, Refund, RefundCursor,
    RefundFilter, RefundId, RefundPage, RefundState, RefundStatus, Settlement, StoreError,
    StoredPayment, SETTLEMENT_RECENT_REFUNDS,
};
use sqlx::pool::PoolConnection;
use sqlx::Pool;

use crate::dialect::{list_variant, Dialect, ErrorClass, Writes};
use crate::driver::Param;
use crate::error::{class_of, is_unique_violation, SqlStoreError};
use crate::migrate::{self, AppliedMigration};
use crate::rows;
use crate::warm::{self, Out, Warm};

/// How many times a write transaction runs before a persistent conflict
/// (deadlock, serialization failure) is reported.
const MAX_ATTEMPTS: u32 = 5;

/// The pause before retry `n` is `n` times this.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// How long a write waits for its turn in the in-process writer queue
/// (SQLite) before the store reports itself unavailable: as long as SQLite
/// itself would have waited for the lock.
const WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// The payments and the refund journal in a SQL database.
///
/// Cheap to clone (the pool and, for SQLite, the writer queue are shared).
/// Run [`migrate`](Self::migrate) once at startup before serving requests.
pub struct SqlPaymentStore<DB: Dialect> {
    pool: Pool<DB>,
    /// Connections kept between statements (network databases), so that
    /// sqlx's release ping is not paid after each ([`crate::warm`]).
    warm: Option<std::sync::Arc<Warm<DB>>>,
    /// SQLite's writers take turns here, in arrival order, before they
    /// ask for the database's lock: only one at a time waits on SQLite.
    writers: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
}

impl<DB: Dialect> Clone for SqlPaymentStore<DB> {
    fn clone(&self) -> Self {
        SqlPaymentStore {
            pool: self.pool.clone(),
            warm: self.warm.clone(),
            writers: self.writers.clone(),
        }
    }
}

impl<DB: Dialect> fmt::Debug for SqlPaymentStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlPaymentStore")
            .field("dialect", &DB::NAME)
            .field("pool", &self.pool)
            .finish()
    }
}

/// A connection for one store call ([`SqlPaymentStore::lease`]).
struct Lease<'s, DB: Dialect> {
    /// Always `Some` until [`Lease::done`] takes it.
    out: Option<Out<DB>>,
    warm: Option<&'s Warm<DB>>,
}

impl<DB: Dialect> Lease<'_, DB> {
    /// Its statements succeeded (the connection is at rest, no
    /// transaction open): keep the connection for the next call, or hand
    /// it back to the pool when it is not kept. When the pool has no other
    /// connection to hand out it goes back as sqlx hands back any dropped
    /// connection (its release ping in a task of its own, off this call's
    /// path): a waiter gets it as soon as that ping returns.
    async fn done(mut self) {
        if let (Some(out), Some(warm)) = (self.out.take(), self.warm) {
            drop(warm.keep(out));
        }
    }
}

impl<DB: Dialect> std::ops::Deref for Lease<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self
            .out
            .as_ref()
            .expect("a lease holds its connection until done")
            .conn
    }
}

impl<DB: Dialect> std::ops::DerefMut for Lease<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self
            .out
            .as_mut()
            .expect("a lease holds its connection until done")
            .conn
    }
}

/// Why one attempt at a write transaction ended.
enum Abort {
    /// A final answer: a protocol refusal or an error not worth retrying.
    Final(StoreError),
    /// A database error; retried if it is a lost race.
    Database(sqlx::Error),
}

impl From<sqlx::Error> for Abort {
    fn from(error: sqlx::Error) -> Self {
        Abort::Database(error)
    }
}

impl From<SqlStoreError> for Abort {
    fn from(error: SqlStoreError) -> Self {
        Abort::Final(error.into())
    }
}

impl From<StoreError> for Abort {
    fn from(error: StoreError) -> Self {
        Abort::Final(error)
    }
}

impl<DB: Dialect> SqlPaymentStore<DB> {
    /// A store on the merchant's own pool. Nothing is checked or created
    /// until [`migrate`](Self::migrate).
    ///
    /// Every call takes its connection from the pool and gives it back, so
    /// the pool's own checks (`test_before_acquire`, `before_acquire`,
    /// `after_release`, lifetimes) apply to each; see
    /// [`keep_connections`](Self::keep_connections) to trade them for
    /// fewer round trips.
    pub fn new(pool: Pool<DB>) -> Self {
        SqlPaymentStore {
            warm: None,
            pool,
            writers: DB::SERIALIZE_WRITES.then(Default::default),
        }
    }

    /// Keeps up to `n` of the pool's connections (at most 4, and at most
    /// half the pool) checked out between calls, as the store does on a
    /// pool it opened itself ([`connect`](Self::connect), [`open`](crate::open)):
    /// see [Connections](crate#connections). `0` keeps none; SQLite never
    /// keeps any. Call it when building the store, inside a Tokio runtime
    /// (without one nothing is kept).
    ///
    /// A call that runs on a kept connection does not go through the
    /// pool's hand-out and release checks: the pool's
    /// `test_before_acquire` ping (sqlx's default), its `before_acquire`
    /// and `after_release` hooks do not run for it. A kept connection
    /// waits at most a second for the next call and stays out of the pool
    /// no longer than the pool's `max_lifetime` (and never over 10 s)
    /// before it is handed back, checked and, if the pool says so,
    /// retired; within that window a session the server ended fails the
    /// call that runs on it (as `Unavailable`) instead of being replaced
    /// first. Opt in only when that suits the pool, e.g. one built like
    /// the store's own (`test_before_acquire(false)`, hooks that need not
    /// see every call).
    #[must_use]
    pub fn keep_connections(self, n: usize) -> Self {
        SqlPaymentStore {
            warm: Warm::new(&self.pool, n.min(DB::KEEP_CONNECTIONS)),
            ..self
        }
    }

    /// Waits for this store's turn to write, where writers queue in the
    /// process (SQLite); `None` elsewhere.
    async fn writer_turn(&self) -> Result<Option<tokio::sync::MutexGuard<'_, ()>>, StoreError> {
        let Some(writers) = &self.writers else {
            return Ok(None);
        };
        match tokio::time::timeout(WRITE_QUEUE_TIMEOUT, writers.lock()).await {
            Ok(turn) => Ok(Some(turn)),
            Err(_) => Err(StoreError::Unavailable(
                format!(
                    "{} waited over {WRITE_QUEUE_TIMEOUT:?} for its turn to write",
                    DB::NAME
                )
                .into(),
            )),
        }
    }

    /// Opens a pool on `url` with settings that suit the store (a 5 s
    /// acquire timeout; for SQLite files also WAL, a busy timeout and
    /// create-if-missing). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, SqlStoreError> {
        // The store's own pool checks a connection on hand-out only when
        // it sat idle for a second, as long as a kept one may wait: keeping
        // skips nothing it would have done.
        DB::connect_pool(url)
            .await
            .map(|pool| Self::new(pool).keep_connections(DB::KEEP_CONNECTIONS))
            .map_err(SqlStoreError::from_sqlx::<DB>)
    }

    /// The pool, e.g. to close it at shutdown.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Creates or upgrades the schema: applies, in order, every embedded
    /// migration that the database's `refund_schema_migrations` history
    /// lacks. Safe to call from several instances at once, and a no-op when
    /// the schema is current. Refuses a database whose applied migrations
    /// differ from this build's files.
    pub async fn migrate(&self) -> Result<(), SqlStoreError> {
        migrate::run(&self.pool).await
    }

    /// The migrations recorded in the database, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<AppliedMigration>, SqlStoreError> {
        let mut conn = self.connection().await?;
        migrate::applied::<DB>(&mut conn).await
    }

    async fn connection(&self) -> Result<PoolConnection<DB>, SqlStoreError> {
        self.pool
            .acquire()
            .await
            .map_err(SqlStoreError::from_sqlx::<DB>)
    }

    /// A connection for one call: a kept one if there is one, else one
    /// from the pool. Hand it back with [`Lease::done`] once its
    /// statements succeeded; dropped otherwise, it goes back to sqlx.
    /// Write transactions run on a lease too ([`begin`]): the store's own
    /// kept connection serves them instead of the pool.
    async fn lease(&self) -> Result<Lease<'_, DB>, sqlx::Error> {
        let warm = self.warm.as_deref();
        let out = match warm {
            Some(warm) => warm.take_or_acquire().await?,
            None => warm::acquire(&self.pool).await?,
        };
        Ok(Lease {
            out: Some(out),
            warm,
        })
    }

    /// Runs `attempt` (one write transaction) until it ends without losing
    /// a race, at most [`MAX_ATTEMPTS`] times.
    async fn write<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, Abort>> + Send,
    {
        let mut tries = 1;
        loop {
            let turn = self.writer_turn().await?;
            let outcome = attempt().await;
            drop(turn);
            match outcome {
                Ok(value) => return Ok(value),
                Err(Abort::Final(error)) => return Err(error),
                Err(Abort::Database(error))
                    if tries < MAX_ATTEMPTS && class_of::<DB>(&error) == ErrorClass::Retry =>
                {
                    tracing::debug!(dialect = DB::NAME, tries, %error, "retrying a conflicting transaction");
                    tokio::time::sleep(RETRY_BACKOFF * tries).await;
                    tries += 1;
                }
                Err(Abort::Database(error)) => {
                    return Err(SqlStoreError::from_sqlx::<DB>(error).into())
                }
            }
        }
    }

    /// Runs a read on a pooled connection.
    async fn read<T>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        decode: impl Fn(&DB::Row) -> Result<T, SqlStoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.lease().await.map_err(SqlStoreError::from_sqlx::<DB>)?;
        let rows = DB::fetch_all(&mut conn, sql, params)
            .await
            .map_err(SqlStoreError::from_sqlx::<DB>)?;
        conn.done().await;
        Ok(rows.iter().map(decode).collect::<Result<_, _>>()?)
    }

    /// Inserts or conditionally updates the payment inside `conn`'s
    /// transaction and reads it back.
    async fn upsert(
        conn: &mut DB::Connection,
        snapshot: &Payment,
        now_ms: i64,
    ) -> Result<StoredPayment, Abort> {
        let sql = DB::statements();
        let history = rows::cancel_history_json(&snapshot.cancel_history)?;
        DB::execute(
            conn,
            &sql.upsert_payment,
            &rows::snapshot_params(snapshot, &history, now_ms),
        )
        .await?;
        let row = DB::fetch_optional(
            conn,
            &sql.select_payment,
            &[Param::Text(&snapshot.merchant_uid)],
        )
        .await?
        .ok_or_else(|| SqlStoreError::Corrupt("the upserted payment is missing".into()))?;
        Ok(rows::stored_payment::<DB>(&row)?)
    }

    async fn try_apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, Abort> {
        let mut conn = self.lease().await?;
        let mut tx = begin::<DB>(&mut conn).await?;
        let stored = Self::upsert(&mut tx, snapshot, refund_core::now_ms()).await?;
        commit(tx).await?;
        conn.done().await;
        Ok(stored)
    }

    /// Why a claim of the payment's slot matched nothing (read only on
    /// that failure path).
    async fn claim_refusal(
        conn: &mut DB::Connection,
        refund: &Refund,
    ) -> Result<StoreError, Abort> {
        let row = DB::fetch_optional(
            conn,
            &DB::statements().select_payment,
            &[Param::Text(&refund.merchant_uid)],
        )
        .await?;
        let Some(row) = row else {
            return Ok(StoreError::PaymentNotFound);
        };
        let stored = rows::stored_payment::<DB>(&row)?;
        Ok(if stored.pending_refund.is_some() {
            StoreError::RefundInProgress
        } else if stored.on_hold {
            StoreError::OnHold
        } else if stored.payment.cancel_amount != refund.base_cancel_amount {
            StoreError::CancelAmountChanged
        } else {
            // A refund was pending when we tried and settled since:
            // the caller retries like any other conflict.
            StoreError::RefundInProgress
        })
    }

    /// `begin_refund` as one statement ([`Writes::Cte`]).
    async fn try_begin_refund_cte(&self, refund: &Refund) -> Result<(), Abort> {
        let sql = DB::statements();
        let mut conn = self.lease().await?;
        let mut params = vec![
            Param::Text(refund.id.as_str()),
            Param::Int(refund_core::now_ms()),
            Param::Text(&refund.merchant_uid),
            Param::Int(refund.base_cancel_amount.minor()),
        ];
        params.extend(rows::refund_params(refund));
        let began = match DB::fetch_optional(&mut conn, &sql.begin_refund_cte, &params).await {
            // The statement is its own transaction: it wrote nothing.
            Err(error) if refund.idempotency_key.is_some() && is_unique_violation(&error) => {
                return Err(StoreError::IdempotencyKeyTaken.into());
            }
            result => result?,
        };
        let began = match &began {
            Some(row) => DB::int(row, "began")?,
            None => 0,
        };
        if began == 1 {
            conn.done().await;
            return Ok(());
        }
        let refusal = Self::claim_refusal(&mut conn, refund).await?;
        conn.done().await;
        Err(refusal.into())
    }

    async fn try_begin_refund(&self, refund: &Refund) -> Result<(), Abort> {
        if DB::WRITES == Writes::Cte {
            return self.try_begin_refund_cte(refund).await;
        }
        // On a leased connection, kept again once the transaction ended
        // cleanly (no release ping); on an error the lease goes back to
        // sqlx, which rolls back and pings.
        let mut conn = self.lease().await?;
        let outcome = Self::begin_refund_in(&mut conn, refund).await?;
        conn.done().await;
        outcome.map_err(Abort::Final)
    }

    /// `begin_refund` as a transaction on `conn`: `Ok(Err(refusal))` when
    /// it was refused and rolled back.
    async fn begin_refund_in(
        conn: &mut DB::Connection,
        refund: &Refund,
    ) -> Result<Result<(), StoreError>, Abort> {
        let sql = DB::statements();
        let mut tx = begin::<DB>(conn).await?;
        let claimed = DB::execute(
            &mut tx,
            &sql.claim_payment,
            &[
                Param::Text(refund.id.as_str()),
                Param::Int(refund_core::now_ms()),
                Param::Text(&refund.merchant_uid),
                Param::Int(refund.base_cancel_amount.minor()),
            ],
        )
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            // Nothing was written; find out which condition failed.
            let refusal = match Self::claim_refusal(&mut tx, refund).await {
                Ok(refusal) => refusal,
                Err(Abort::Final(error)) => error,
                Err(abort) => return Err(abort),
            };
            rollback(tx).await?;
            return Ok(Err(refusal));
        }
        match DB::execute(&mut tx, &sql.insert_refund, &rows::refund_params(refund)).await {
            Err(error) if refund.idempotency_key.is_some() && is_unique_violation(&error) => {
                rollback(tx).await?;
                return Ok(Err(StoreError::IdempotencyKeyTaken));
            }
            result => result?,
        };
        commit(tx).await?;
        Ok(Ok(()))
    }

    /// Why a settlement of `attempt` matched nothing: the refund's current
    /// attempt and state (read only on that failure path).
    async fn settle_refusal(&self, id: &RefundId, attempt: u32) -> Result<StoreError, Abort> {
        let mut conn = self.lease().await?;
        let row = DB::fetch_optional(
            &mut conn,
            &DB::statements().select_refund,
            &[Param::Text(id.as_str())],
        )
        .await?;
        conn.done().await;
        Ok(match row {
            None => StoreError::RefundNotFound,
            Some(row) => refusal_of(&rows::refund::<DB>(&row)?, attempt),
        })
    }

    /// The settled refund, its payment and the payment's newest refunds,
    /// out of settlement rows (`None` without the settled refund's row).
    /// Where the rows that list the refunds were read before the
    /// settlement (PostgreSQL's CTE), the settled refund takes its old
    /// row's place.
    /// `written`: the snapshot's cancel history as the statement wrote it
    /// (JSON text and entries), if it applied one.
    fn settlement_of(
        rows: &[DB::Row],
        id: &RefundId,
        written: Option<(&str, &[CancelEntry])>,
    ) -> Result<Option<Settlement>, Abort> {
        let mut settled = None;
        let mut recent = Vec::with_capacity(rows.len());
        for row in rows {
            let refund = rows::refund::<DB>(row)?;
            match rows::settled_payment::<DB>(row, written)? {
                Some(payment) if &refund.id == id && settled.is_none() => {
                    settled = Some((refund, payment));
                }
                _ => recent.push(refund),
            }
        }
        let Some((refund, payment)) = settled else {
            return Ok(None);
        };
        for listed in &mut recent {
            if listed.id == refund.id {
                *listed = refund.clone();
            }
        }
        Ok(Some(Settlement::new(refund, payment, recent)))
    }

    async fn try_finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, Abort> {
        if state.status() == RefundStatus::Pending {
            // Never "settles" into pending: nothing to write, only the reason.
            return Err(self.settle_refusal(id, attempt).await?.into());
        }
        let sql = DB::statements();
        let now_ms = refund_core::now_ms();
        let history = snapshot
            .map(|s| rows::cancel_history_json(&s.cancel_history))
            .transpose()?;
        let snapshot = snapshot.zip(history.as_deref());
        let written = snapshot.map(|(payment, json)| (json, payment.cancel_history.as_slice()));
        let hold = matches!(state, RefundState::NeedsReview(_));
        // Late evidence: a not_applied failure may still become succeeded,
        // or go to review (`RefundState::may_become`).
        let late_success = Param::Int(i64::from(matches!(
            state,
            RefundState::Succeeded { .. } | RefundState::NeedsReview(_)
        )));
        let limit = Param::Int(i64::from(SETTLEMENT_RECENT_REFUNDS));
        let id_param = Param::Text(id.as_str());
        let attempt_param = Param::Int(i64::from(attempt));
        let settlement = match DB::WRITES {
            Writes::Cte => {
                // One statement: settle, update the payment, answer.
                let mut params = rows::state_params(state).to_vec();
                params.extend([id_param, attempt_param, late_success]);
                params.extend(rows::settle_payment_params(None, hold, now_ms, snapshot));
                params.push(limit);
                let mut conn = self.lease().await?;
                let rows = DB::fetch_all(&mut conn, &sql.finish_refund_cte, &params).await?;
                conn.done().await;
                match Self::settlement_of(&rows, id, written)? {
                    None if !rows.is_empty() => {
                        return Err(SqlStoreError::Corrupt(
                            "a refund settled without its payment".into(),
                        )
                        .into())
                    }
                    settlement => settlement,
                }
            }
            Writes::JoinedUpdate => {
                // One atomic UPDATE of both rows, then one read.
                let mut params = rows::state_params(state).to_vec();
                params.extend(rows::settle_payment_params(None, hold, now_ms, snapshot));
                params.extend([id_param, attempt_param, late_success]);
                let mut conn = self.lease().await?;
                let settled = DB::execute(&mut conn, &sql.finish_refund_joined, &params).await?;
                if DB::rows_affected(&settled) == 0 {
                    conn.done().await;
                    None
                } else {
                    let rows =
                        DB::fetch_all(&mut conn, &sql.settlement, &[id_param, id_param, limit])
                            .await?;
                    conn.done().await;
                    Some(Self::settlement_of(&rows, id, written)?.ok_or_else(|| {
                        SqlStoreError::Corrupt("a settled refund or its payment is missing".into())
                    })?)
                }
            }
            Writes::Transaction => {
                let mut conn = self.lease().await?;
                let mut tx = begin::<DB>(&mut conn).await?;
                let mut params = rows::state_params(state).to_vec();
                params.extend([id_param, attempt_param, late_success]);
                let settled = DB::execute(&mut tx, &sql.settle_refund, &params).await?;
                if DB::rows_affected(&settled) == 0 {
                    rollback(tx).await?;
                    conn.done().await;
                    None
                } else {
                    let mut params =
                        rows::settle_payment_params(Some(id.as_str()), hold, now_ms, snapshot);
                    params.push(id_param);
                    DB::execute(&mut tx, &sql.settle_payment, &params).await?;
                    let rows =
                        DB::fetch_all(&mut tx, &sql.settlement, &[id_param, id_param, limit])
                            .await?;
                    let settlement = Self::settlement_of(&rows, id, written)?.ok_or_else(|| {
                        SqlStoreError::Corrupt("a settled refund or its payment is missing".into())
                    })?;
                    commit(tx).await?;
                    conn.done().await;
                    Some(settlement)
                }
            }
        };
        let Some(settlement) = settlement else {
            return Err(self.settle_refusal(id, attempt).await?.into());
        };
        if let Some((snapshot, _)) = snapshot {
            if snapshot.merchant_uid != settlement.refund.merchant_uid {
                // A snapshot of another order than the refund's (the
                // workflow never passes one): applied on its own.
                let mut conn = self.lease().await?;
                let mut tx = begin::<DB>(&mut conn).await?;
                Self::upsert(&mut tx, snapshot, now_ms).await?;
                commit(tx).await?;
                conn.done().await;
            }
        }
        Ok(settlement)
    }

    async fn try_retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: refund_core::Amount,
        checksum: refund_core::Amount,
    ) -> Result<Refund, Abort> {
        let sql = DB::statements();
        let mut conn = self.lease().await?;
        let mut tx = begin::<DB>(&mut conn).await?;
        let reopened = DB::execute(
            &mut tx,
            &sql.reopen_refund,
            &[
                Param::Int(base_cancel_amount.minor()),
                Param::Int(checksum.minor()),
                Param::Text(id.as_str()),
            ],
        )
        .await?;
        let row =
            DB::fetch_optional(&mut tx, &sql.select_refund, &[Param::Text(id.as_str())]).await?;
        let Some(row) = row else {
            rollback(tx).await?;
            return Err(StoreError::RefundNotFound.into());
        };
        let refund = rows::refund::<DB>(&row)?;
        if DB::rows_affected(&reopened) == 0 {
            rollback(tx).await?;
            return Err(StoreError::NotPending(refund.status()).into());
        }
        let claimed = DB::execute(
            &mut tx,
            &sql.claim_payment,
            &[
                Param::Text(id.as_str()),
                Param::Int(refund_core::now_ms()),
                Param::Text(&refund.merchant_uid),
                Param::Int(base_cancel_amount.minor()),
            ],
        )
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            let refusal = Self::claim_refusal(&mut tx, &refund).await?;
            rollback(tx).await?;
            conn.done().await;
            return Err(refusal.into());
        }
        commit(tx).await?;
        conn.done().await;
        Ok(refund)
    }

    async fn try_note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, Abort> {
        let sql = DB::statements();
        let mut conn = self.lease().await?;
        let noted = DB::execute(
            &mut conn,
            &sql.note_cancellation,
            &[
                Param::Text(cancellation_id),
                Param::Text(id.as_str()),
                Param::Int(i64::from(attempt)),
            ],
        )
        .await?;
        let row =
            DB::fetch_optional(&mut conn, &sql.select_refund, &[Param::Text(id.as_str())]).await?;
        let Some(row) = row else {
            return Err(StoreError::RefundNotFound.into());
        };
        conn.done().await;
        let refund = rows::refund::<DB>(&row)?;
        if DB::rows_affected(&noted) == 0 {
            return Err(refusal_of(&refund, attempt).into());
        }
        Ok(refund)
    }

    /// `resolve_review` as one write transaction: lifts the hold (only
    /// while held), checks that the payment's open reviews are the ones
    /// the caller saw, records the resolution on them, applies the
    /// snapshot, and reads the payment back.
    async fn try_resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, Abort> {
        let sql = DB::statements();
        let now_ms = refund_core::now_ms();
        let mut conn = self.lease().await?;
        let mut tx = begin::<DB>(&mut conn).await?;
        let lifted = DB::execute(
            &mut tx,
            &sql.lift_hold,
            &[Param::Int(now_ms), Param::Text(merchant_uid)],
        )
        .await?;
        if DB::rows_affected(&lifted) == 0 {
            let found =
                DB::fetch_optional(&mut tx, &sql.select_payment, &[Param::Text(merchant_uid)])
                    .await?;
            rollback(tx).await?;
            let found = found
                .map(|row| rows::stored_payment::<DB>(&row))
                .transpose()?;
            return Err(match found {
                None => StoreError::PaymentNotFound,
                Some(held) if held.on_hold => StoreError::RefundInProgress,
                Some(_) => StoreError::NotOnHold,
            }
            .into());
        }
        // The payment row is locked by the write above: no refund of it
        // can settle into a review until this commits.
        let open = DB::fetch_all(&mut tx, &sql.open_reviews, &[Param::Text(merchant_uid)])
            .await?
            .iter()
            .map(|row| DB::text(row, "id", DB::BINARY_TEXT))
            .collect::<Result<std::collections::BTreeSet<String>, _>>()?;
        let seen: std::collections::BTreeSet<String> = open_reviews
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect();
        if open != seen {
            rollback(tx).await?;
            return Err(StoreError::ReviewChanged.into());
        }
        let resolved = DB::execute(
            &mut tx,
            &sql.resolve_reviews,
            &[
                Param::Text(by.as_str()),
                Param::Text(note),
                Param::Text(merchant_uid),
            ],
        )
        .await?;
        if DB::rows_affected(&resolved) != u64::try_from(seen.len()).unwrap_or(u64::MAX) {
            rollback(tx).await?;
            return Err(StoreError::ReviewChanged.into());
        }
        let stored = match snapshot.filter(|s| s.merchant_uid == merchant_uid) {
            Some(snapshot) => Self::upsert(&mut tx, snapshot, now_ms).await?,
            None => {
                let row =
                    DB::fetch_optional(&mut tx, &sql.select_payment, &[Param::Text(merchant_uid)])
                        .await?
                        .ok_or_else(|| SqlStoreError::Corrupt("a held payment vanished".into()))?;
                rows::stored_payment::<DB>(&row)?
            }
        };
        commit(tx).await?;
        conn.done().await;
        Ok(stored)
    }
}

#[async_trait]
impl<DB: Dialect> PaymentStore for SqlPaymentStore<DB> {
    async fn now_ms(&self) -> Result<i64, StoreError> {
        let now = self
            .read(&DB::statements().now, &[], |row| {
                DB::int(row, "now_ms").map_err(SqlStoreError::Database)
            })
            .await?;
        now.into_iter()
            .next()
            .ok_or_else(|| StoreError::corrupt("the database did not tell the time"))
    }

    async fn payment(&self, merchant_uid: &str) -> Result<Option<StoredPayment>, StoreError> {
        let found = self
            .read(
                &DB::statements().select_payment,
                &[Param::Text(merchant_uid)],
                rows::stored_payment::<DB>,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, StoreError> {
        self.write(|| self.try_apply_snapshot(snapshot)).await
    }

    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError> {
        self.write(|| self.try_begin_refund(refund)).await
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, StoreError> {
        self.write(|| self.try_finish_refund(id, attempt, state, snapshot))
            .await
    }

    async fn retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: refund_core::Amount,
        checksum: refund_core::Amount,
    ) -> Result<Refund, StoreError> {
        self.write(|| self.try_retry_refund(id, base_cancel_amount, checksum))
            .await
    }

    async fn note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, StoreError> {
        self.write(|| self.try_note_cancellation_id(id, attempt, cancellation_id))
            .await
    }

    async fn resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, StoreError> {
        self.write(|| self.try_resolve_review(merchant_uid, open_reviews, by, note, snapshot))
            .await
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        let found = self
            .read(
                &DB::statements().select_refund,
                &[Param::Text(id.as_str())],
                rows::refund::<DB>,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        let found = self
            .read(
                &DB::statements().refund_by_key,
                &[Param::Text(key)],
                rows::refund::<DB>,
            )
            .await?;
        Ok(found.into_iter().next())
    }

    async fn refunds_of(&self, merchant_uid: &str, limit: u32) -> Result<Vec<Refund>, StoreError> {
        self.read(
            &DB::statements().refunds_of,
            &[Param::Text(merchant_uid), Param::Int(i64::from(limit))],
            rows::refund::<DB>,
        )
        .await
    }

    async fn list_refunds(
        &self,
        filter: &RefundFilter,
        limit: u32,
        cursor: Option<&RefundCursor>,
    ) -> Result<RefundPage, StoreError> {
        let limit = capped_limit(limit);
        if limit == 0 {
            return Ok(RefundPage::from_overfetch(Vec::new(), 0));
        }
        let variant = list_variant(
            filter.status.is_some(),
            filter.merchant_uid.is_some(),
            cursor.is_some(),
        );
        let mut params = Vec::with_capacity(6);
        params.extend(filter.status.map(|s| Param::Text(s.as_str())));
        params.extend(filter.merchant_uid.as_deref().map(Param::Text));
        if let Some(cursor) = cursor {
            params.extend([
                Param::Int(cursor.created_at_ms),
                Param::Int(cursor.created_at_ms),
                Param::Text(cursor.id.as_str()),
            ]);
        }
        // One more than asked: it only says whether another page follows.
        params.push(Param::Int(i64::from(limit) + 1));
        let refunds = self
            .read(
                &DB::statements().list_refunds[variant],
                &params,
                rows::refund::<DB>,
            )
            .await?;
        Ok(RefundPage::from_overfetch(refunds, limit))
    }

    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        // No cursor: from before every refund (no id is below the empty one).
        let (after_ms, after_id) =
            after.map_or((i64::MIN, ""), |c| (c.created_at_ms(), c.id().as_str()));
        self.read(
            &DB::statements().stale_pending,
            &[
                Param::Int(older_than_ms),
                Param::Int(older_than_ms),
                Param::Int(after_ms),
                Param::Int(after_ms),
                Param::Text(after_id),
                Param::Int(i64::from(limit)),
            ],
            rows::refund::<DB>,
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The probe is a write: it queues with the others.
        let _turn = self.writer_turn().await?;
        let mut conn = self.connection().await?;
        DB::execute(&mut conn, &DB::statements().ping, &[Param::Text("")])
            .await
            .map_err(SqlStoreError::from_sqlx::<DB>)?;
        Ok(())
    }
}

/// Why a write about `attempt` of `refund` (as read now) matched nothing:
/// the refund was run again since, or it is no longer pending.
fn refusal_of(refund: &Refund, attempt: u32) -> StoreError {
    if refund.attempt != attempt {
        StoreError::AttemptChanged {
            current: refund.attempt,
        }
    } else {
        StoreError::NotPending(refund.status())
    }
}

/// Starts a write transaction on `conn` (one statement).
async fn begin<DB: Dialect>(
    conn: &mut DB::Connection,
) -> Result<sqlx::Transaction<'_, DB>, sqlx::Error> {
    crate::driver::count_statement();
    sqlx::Connection::begin_with(conn, DB::BEGIN_WRITE).await
}

/// Commits (one statement).
async fn commit<DB: Dialect>(tx: sqlx::Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    crate::driver::count_statement();
    tx.commit().await
}

/// Rolls back (one statement).
async fn rollback<DB: Dialect>(tx: sqlx::Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    crate::driver::count_statement();
    tx.rollback().await
}
