//! [`SqlPaymentStore`]: refund-core's [`PaymentStore`] on a sqlx pool, one
//! implementation for every [`Dialect`].

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use refund_core::{
    Payment, PaymentStore, Refund, RefundId, RefundState, RefundStatus, StoreError, StoredPayment,
};
use sqlx::pool::PoolConnection;
use sqlx::Pool;

use crate::dialect::{Dialect, ErrorClass};
use crate::driver::Param;
use crate::error::{class_of, is_unique_violation, SqlStoreError};
use crate::migrate::{self, AppliedMigration};
use crate::rows;

/// How many times a write transaction runs before a persistent conflict
/// (deadlock, serialization failure) is reported.
const MAX_ATTEMPTS: u32 = 5;

/// The pause before retry `n` is `n` times this.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);

/// The payments and the refund journal in a SQL database.
///
/// Cheap to clone (the pool is shared). Run [`migrate`](Self::migrate)
/// once at startup before serving requests.
pub struct SqlPaymentStore<DB: Dialect> {
    pool: Pool<DB>,
}

impl<DB: Dialect> Clone for SqlPaymentStore<DB> {
    fn clone(&self) -> Self {
        SqlPaymentStore {
            pool: self.pool.clone(),
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
    pub fn new(pool: Pool<DB>) -> Self {
        SqlPaymentStore { pool }
    }

    /// Opens a pool on `url` with settings that suit the store (a 5 s
    /// acquire timeout; for SQLite files also WAL, a busy timeout and
    /// create-if-missing). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, SqlStoreError> {
        DB::connect_pool(url)
            .await
            .map(Self::new)
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

    /// Runs `attempt` (one write transaction) until it ends without losing
    /// a race, at most [`MAX_ATTEMPTS`] times.
    async fn write<T, F, Fut>(&self, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T, Abort>> + Send,
    {
        let mut tries = 1;
        loop {
            match attempt().await {
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
        let mut conn = self.connection().await?;
        let rows = DB::fetch_all(&mut conn, sql, params)
            .await
            .map_err(SqlStoreError::from_sqlx::<DB>)?;
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
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let stored = Self::upsert(&mut tx, snapshot, refund_core::now_ms()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn try_begin_refund(&self, refund: &Refund) -> Result<(), Abort> {
        let sql = DB::statements();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
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
            let refused =
                Self::why_unclaimed(&mut tx, &refund.merchant_uid, refund.base_cancel_amount)
                    .await?;
            tx.rollback().await?;
            return Err(refused.into());
        }
        match DB::execute(&mut tx, &sql.insert_refund, &rows::refund_params(refund)).await {
            Err(error) if refund.idempotency_key.is_some() && is_unique_violation(&error) => {
                tx.rollback().await?;
                return Err(StoreError::IdempotencyKeyTaken.into());
            }
            result => result?,
        };
        tx.commit().await?;
        Ok(())
    }

    /// Why `claim_payment` matched no row, read inside the transaction.
    async fn why_unclaimed(
        conn: &mut DB::Connection,
        merchant_uid: &str,
        base_cancel_amount: refund_core::Amount,
    ) -> Result<StoreError, Abort> {
        let row = DB::fetch_optional(
            conn,
            &DB::statements().select_payment,
            &[Param::Text(merchant_uid)],
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
        } else if stored.payment.cancel_amount != base_cancel_amount {
            StoreError::CancelAmountChanged
        } else {
            // A refund was pending when we tried and settled since: the
            // caller retries like any other conflict.
            StoreError::RefundInProgress
        })
    }

    async fn try_retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: refund_core::Amount,
        checksum: refund_core::Amount,
    ) -> Result<Refund, Abort> {
        let sql = DB::statements();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
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
            tx.rollback().await?;
            return Err(StoreError::RefundNotFound.into());
        };
        let refund = rows::refund::<DB>(&row)?;
        if DB::rows_affected(&reopened) == 0 {
            tx.rollback().await?;
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
            let refused =
                Self::why_unclaimed(&mut tx, &refund.merchant_uid, base_cancel_amount).await?;
            tx.rollback().await?;
            return Err(refused.into());
        }
        tx.commit().await?;
        Ok(refund)
    }

    async fn try_finish_refund(
        &self,
        id: &RefundId,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Refund, Abort> {
        let sql = DB::statements();
        let now_ms = refund_core::now_ms();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let [status, kind, code, message, cancellation_id] = rows::state_params(state);
        // Late evidence: a not_applied failure may still become succeeded,
        // or go to review (`RefundState::may_become`).
        let from_not_applied = i64::from(matches!(
            state,
            RefundState::Succeeded { .. } | RefundState::NeedsReview(_)
        ));
        let params = if state.status() == RefundStatus::Pending {
            // Never "settles" into pending: match no row.
            [
                status,
                kind,
                code,
                message,
                cancellation_id,
                Param::Text(""),
                Param::Int(0),
            ]
        } else {
            [
                status,
                kind,
                code,
                message,
                cancellation_id,
                Param::Text(id.as_str()),
                Param::Int(from_not_applied),
            ]
        };
        let settled = DB::execute(&mut tx, &sql.settle_refund, &params).await?;
        let row =
            DB::fetch_optional(&mut tx, &sql.select_refund, &[Param::Text(id.as_str())]).await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Err(StoreError::RefundNotFound.into());
        };
        let refund = rows::refund::<DB>(&row)?;
        if DB::rows_affected(&settled) == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotPending(refund.status()).into());
        }
        let merchant_uid = Param::Text(&refund.merchant_uid);
        DB::execute(
            &mut tx,
            &sql.free_payment,
            &[Param::Int(now_ms), merchant_uid, Param::Text(id.as_str())],
        )
        .await?;
        if let RefundState::NeedsReview(_) = state {
            DB::execute(
                &mut tx,
                &sql.hold_payment,
                &[Param::Int(now_ms), merchant_uid],
            )
            .await?;
        }
        if let Some(snapshot) = snapshot {
            Self::upsert(&mut tx, snapshot, now_ms).await?;
        }
        tx.commit().await?;
        Ok(refund)
    }

    async fn try_release_hold(&self, merchant_uid: &str) -> Result<(), Abort> {
        let mut conn = self.pool.acquire().await?;
        let released = DB::execute(
            &mut conn,
            &DB::statements().release_hold,
            &[Param::Int(refund_core::now_ms()), Param::Text(merchant_uid)],
        )
        .await?;
        if DB::rows_affected(&released) == 0 {
            return Err(StoreError::PaymentNotFound.into());
        }
        Ok(())
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
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Refund, StoreError> {
        self.write(|| self.try_finish_refund(id, state, snapshot))
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

    async fn release_hold(&self, merchant_uid: &str) -> Result<(), StoreError> {
        self.write(|| self.try_release_hold(merchant_uid)).await
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

    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        self.read(
            &DB::statements().stale_pending,
            &[Param::Int(older_than_ms), Param::Int(i64::from(limit))],
            rows::refund::<DB>,
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        DB::execute(&mut conn, &DB::statements().ping, &[Param::Text("")])
            .await
            .map_err(SqlStoreError::from_sqlx::<DB>)?;
        Ok(())
    }
}
