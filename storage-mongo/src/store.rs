//! [`MongoPaymentStore`]: the [`PaymentStore`] on MongoDB.
//!
//! Every money-deciding operation is ONE single-document update (a
//! `findOneAndUpdate` whose filter carries the preconditions), because a
//! single-document write is atomic on every MongoDB deployment, without
//! multi-document transactions. When such an update matches nothing, the
//! document is read once afterwards only to say *why* (which
//! [`StoreError`]); that read never decides anything.
//!
//! Time is the server's: journal timestamps are `$$NOW` inside the update
//! pipeline that writes them, the sweep's cutoff is `$$NOW` inside its
//! aggregation, and [`PaymentStore::now_ms`] reads the same clock with
//! `hello`.

use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{
    ClientOptions, CollectionOptions, IndexOptions, ReadPreference, ReturnDocument,
    SelectionCriteria,
};
use mongodb::{Client, Collection, Database, IndexModel};
use refund_core::{
    capped_limit, Actor, Amount, Payment, PaymentStore, PendingCursor, Refund, RefundCursor,
    RefundFilter, RefundId, RefundPage, RefundState, RefundStatus, Settlement, StoreError,
    StoredPayment, SETTLEMENT_RECENT_REFUNDS,
};

use crate::document::{
    decode, frees_its_key, is_attempt, is_not_applied, journal_projection, state_document,
    JournalDocument, PaymentDocument, PaymentFields, RefundFields, UnwoundRefund,
};
use crate::error::{store_error, MongoStoreError};

/// The collection that holds one document per payment, journal embedded.
pub const PAYMENTS_COLLECTION: &str = "payments";

/// Server-selection timeout [`MongoPaymentStore::connect`] uses when the URI
/// sets none: the driver's 30 s default would keep a refund request hanging
/// long after the database is known to be down; this answers
/// `storage_unavailable` within seconds instead.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a conditional update is retried when it matched nothing but
/// the follow-up read found no reason (the blocking state changed in
/// between, e.g. the other pending refund just failed). Each attempt is
/// atomic on its own; this only bounds the work under heavy contention.
const CONFLICT_ATTEMPTS: usize = 3;

/// Lookup index for [`PaymentStore::refund`] and `finish_refund`.
const REFUND_ID_INDEX: &str = "refund_id";
/// Lookup index for the reconciliation sweep's pending refunds.
const PENDING_BY_AGE_INDEX: &str = "refund_status_created_at";
/// Lookup index for listings, newest first.
const LISTING_INDEX: &str = "refund_created_at_id";
/// Name of the unique index that makes an idempotency key name one refund
/// across payments (and serves lookups by key).
const KEY_SLOT_INDEX: &str = "refund_key_slot";

/// Payments and their refund journal in a MongoDB database.
///
/// Cheap to clone (the driver's handles are reference-counted).
#[derive(Clone, Debug)]
pub struct MongoPaymentStore {
    database: Database,
    payments: Collection<Document>,
}

impl MongoPaymentStore {
    /// A store on `database`, in its [`PAYMENTS_COLLECTION`] collection.
    ///
    /// Reads always go to the primary, whatever the client's read
    /// preference: a lagging secondary could report a refund as still
    /// pending, or an old `cancel_amount`, after it changed.
    pub fn new(database: Database) -> Self {
        let options = CollectionOptions::builder()
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .build();
        let payments = database.collection_with_options(PAYMENTS_COLLECTION, options);
        Self { database, payments }
    }

    /// Parses `uri`, builds a client and a store on database `db_name`.
    ///
    /// Uses [`DEFAULT_SERVER_SELECTION_TIMEOUT`] unless the URI sets
    /// `serverSelectionTimeoutMS`. The driver connects lazily: this fails
    /// only for a malformed URI; call [`PaymentStore::ping`] to check the
    /// server, and [`ensure_indexes`](Self::ensure_indexes) at startup.
    pub async fn connect(uri: &str, db_name: &str) -> Result<Self, MongoStoreError> {
        let connect_error = |e| MongoStoreError::new("connect", e);
        let mut options = ClientOptions::parse(uri).await.map_err(connect_error)?;
        options
            .server_selection_timeout
            .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
        let client = Client::with_options(options).map_err(connect_error)?;
        Ok(Self::new(client.database(db_name)))
    }

    /// The database this store uses.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Creates the lookup indexes the queries rely on; idempotent, run it at
    /// every startup.
    ///
    /// The one unique key, `merchant_uid`, needs no index of its own: it is
    /// the document's `_id`, unique on every collection from the start, so
    /// two racing inserts of one payment can never create two documents even
    /// before this runs. Refund ids and idempotency keys live inside the
    /// payment's document, where the atomic update's filter keeps them
    /// unique per payment.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let named = |name: &str| IndexOptions::builder().name(name.to_owned()).build();
        let indexes = [
            IndexModel::builder()
                .keys(doc! { "refunds.id": 1 })
                .options(named(REFUND_ID_INDEX))
                .build(),
            IndexModel::builder()
                .keys(doc! { "refunds.status": 1, "refunds.created_at_ms": 1 })
                .options(named(PENDING_BY_AGE_INDEX))
                .build(),
            IndexModel::builder()
                .keys(doc! { "refunds.created_at_ms": -1, "refunds.id": -1 })
                .options(named(LISTING_INDEX))
                .build(),
            IndexModel::builder()
                .keys(doc! { "refunds.key_slot": 1 })
                .options(
                    IndexOptions::builder()
                        .name(KEY_SLOT_INDEX.to_owned())
                        .unique(true)
                        // Payments without refunds would all index "null".
                        .partial_filter_expression(
                            doc! { "refunds.key_slot": { "$type": "string" } },
                        )
                        .build(),
                )
                .build(),
        ];
        self.payments
            .create_indexes(indexes)
            .await
            .map_err(store_error("ensure_indexes"))?;
        Ok(())
    }

    /// Why a begin_refund update matched nothing, from the document as it
    /// is now; `None` when nothing blocks it any more (retry).
    async fn begin_conflict(&self, refund: &Refund) -> Result<Option<StoreError>, StoreError> {
        let Some(document) = self
            .payments
            .find_one(doc! { "_id": refund.merchant_uid.as_str() })
            .await
            .map_err(store_error("begin_refund"))?
        else {
            return Ok(Some(StoreError::PaymentNotFound));
        };
        let stored: PaymentDocument = decode(document)?;
        // Held by any refund of this payment (the update's filter).
        let key_taken = refund.idempotency_key.as_ref().is_some_and(|key| {
            stored
                .refunds
                .iter()
                .any(|holder| holder.idempotency_key.as_ref() == Some(key))
        });
        let conflict = if stored.pending_refund_id.is_some() {
            StoreError::RefundInProgress
        } else if stored.on_hold {
            StoreError::OnHold
        } else if stored.payment.cancel_amount != refund.base_cancel_amount.minor() {
            StoreError::CancelAmountChanged
        } else if key_taken {
            StoreError::IdempotencyKeyTaken
        } else {
            return Ok(None);
        };
        Ok(Some(conflict))
    }

    /// Why a finish_refund update matched nothing; `None` when the refund
    /// may move to `state` after all (its state changed in between: retry).
    async fn finish_conflict(
        &self,
        id: &str,
        attempt: u32,
        state: &RefundState,
    ) -> Result<Option<StoreError>, StoreError> {
        let Some(journal) = self
            .journal(doc! { "refunds.id": id }, "finish_refund")
            .await?
        else {
            return Ok(Some(StoreError::RefundNotFound));
        };
        let fields =
            journal.refunds.iter().find(|r| r.id == id).ok_or_else(|| {
                StoreError::corrupt(format!("refund {id:?} vanished from its array"))
            })?;
        let current = fields.state()?;
        let current_attempt = fields.attempt()?;
        if current_attempt != attempt {
            Ok(Some(StoreError::AttemptChanged {
                current: current_attempt,
            }))
        } else if current.may_become(state) {
            Ok(None)
        } else {
            Ok(Some(StoreError::NotPending(current.status())))
        }
    }

    /// Runs an aggregation whose documents are single journal elements
    /// (`{_id, refunds: <element>}`, as `$unwind` leaves them).
    async fn unwound_refunds(
        &self,
        pipeline: Vec<Document>,
        operation: &'static str,
    ) -> Result<Vec<Refund>, StoreError> {
        let mut cursor = self
            .payments
            .aggregate(pipeline)
            .await
            .map_err(store_error(operation))?;
        let mut refunds = Vec::new();
        while cursor.advance().await.map_err(store_error(operation))? {
            let document = cursor
                .deserialize_current()
                .map_err(store_error(operation))?;
            let unwound: UnwoundRefund = decode(document)?;
            refunds.push(unwound.into_refund()?);
        }
        Ok(refunds)
    }

    /// The journal of the payment document matching `filter`.
    async fn journal(
        &self,
        filter: Document,
        operation: &'static str,
    ) -> Result<Option<JournalDocument>, StoreError> {
        self.payments
            .find_one(filter)
            .projection(journal_projection())
            .await
            .map_err(store_error(operation))?
            .map(decode)
            .transpose()
    }
}

/// An aggregation expression for a constant: strings that start with `$`
/// and documents with `$` keys are data here, never field paths or
/// operators. Every caller-supplied value in an update pipeline goes
/// through this.
fn literal(value: impl Into<Bson>) -> Document {
    doc! { "$literal": value.into() }
}

/// The server's clock in an aggregation or update pipeline, as Int64 unix
/// milliseconds. `$$NOW` is fixed for the whole operation, so every field
/// it stamps in one update gets the same value.
fn server_now_ms() -> Document {
    doc! { "$toLong": "$$NOW" }
}

/// The pipeline expression for the `payment` field after a snapshot: the
/// snapshot if its `cancel_amount` is at least the stored one (or nothing is
/// stored yet), else the stored payment unchanged. Cancellations only add
/// up, so a lower total is an older snapshot and must not roll money back.
fn newer_snapshot(snapshot: &Payment) -> Document {
    let fields = PaymentFields::from_payment(snapshot).to_document();
    doc! {
        "$cond": [
            { "$gte": [
                snapshot.cancel_amount.minor(),
                { "$ifNull": ["$payment.cancel_amount", i64::MIN] },
            ] },
            literal(fields),
            "$payment",
        ]
    }
}

#[async_trait]
impl PaymentStore for MongoPaymentStore {
    /// The primary's clock, from the `localTime` of a `hello` reply: one
    /// round trip that the server answers from memory (no collection, no
    /// lock, no document needed), on the same server and clock whose
    /// `$$NOW` stamps the journal. An aggregation of `$$NOW` would need a
    /// non-empty collection to produce a row (or `$documents`, MongoDB
    /// 5.1+), and a write to read the time would be heavier still.
    async fn now_ms(&self) -> Result<i64, StoreError> {
        let reply = self
            .database
            .run_command(doc! { "hello": 1 })
            .selection_criteria(SelectionCriteria::ReadPreference(ReadPreference::Primary))
            .await
            .map_err(store_error("now_ms"))?;
        let local_time = reply
            .get_datetime("localTime")
            .map_err(|e| StoreError::corrupt(format!("hello without localTime: {e}")))?;
        Ok(local_time.timestamp_millis())
    }

    async fn payment(&self, merchant_uid: &str) -> Result<Option<StoredPayment>, StoreError> {
        self.payments
            .find_one(doc! { "_id": merchant_uid })
            .projection(doc! { "refunds": 0 })
            .await
            .map_err(store_error("payment"))?
            .map(|document| decode::<PaymentDocument>(document)?.into_stored())
            .transpose()
    }

    async fn apply_snapshot(&self, snapshot: &Payment) -> Result<StoredPayment, StoreError> {
        // An upsert with an update pipeline: inserts the payment, or replaces
        // its snapshot only if not older, in one atomic write. The other
        // fields are only initialized when absent (a new document).
        let update = vec![doc! { "$set": {
            "payment": newer_snapshot(snapshot),
            "pending_refund_id": { "$ifNull": ["$pending_refund_id", Bson::Null] },
            "on_hold": { "$ifNull": ["$on_hold", false] },
            "refunds": { "$ifNull": ["$refunds", literal(Bson::Array(Vec::new()))] },
        } }];
        let filter = doc! { "_id": snapshot.merchant_uid.as_str() };
        let mut retried = false;
        loop {
            let written = self
                .payments
                .find_one_and_update(filter.clone(), update.clone())
                .upsert(true)
                .return_document(ReturnDocument::After)
                .projection(doc! { "refunds": 0 })
                .await;
            match written {
                Ok(Some(document)) => return decode::<PaymentDocument>(document)?.into_stored(),
                // An upsert always returns the document it wrote. SecantusDB,
                // our test server, sometimes returns none when two first
                // upserts race; the document exists then, so the retry
                // takes the update path as below.
                Ok(None) if !retried => retried = true,
                Ok(None) => return Err(StoreError::corrupt("the upsert returned no document")),
                Err(error) => {
                    let error = MongoStoreError::new("apply_snapshot", error);
                    // Two first snapshots of one payment raced to insert it
                    // and ours lost on `_id`: the document exists now, so
                    // the same update, once more, takes the update path.
                    if retried || !error.is_duplicate_key() {
                        return Err(error.into());
                    }
                    retried = true;
                }
            }
        }
    }

    async fn begin_refund(&self, refund: &Refund) -> Result<(), StoreError> {
        // Every precondition of the contract is in the filter, so the check
        // and the write are one atomic step: of many racing callers, the
        // first to write sets pending_refund_id and the rest match nothing.
        let mut filter = doc! {
            "_id": refund.merchant_uid.as_str(),
            "pending_refund_id": Bson::Null,
            "on_hold": { "$ne": true },
            "payment.cancel_amount": refund.base_cancel_amount.minor(),
        };
        let refunds: Bson =
            doc! { "$ifNull": ["$refunds", literal(Bson::Array(Vec::new()))] }.into();
        if let Some(key) = &refund.idempotency_key {
            // No refund of this payment holds the key (another payment's
            // holder hits the unique key_slot index).
            filter.insert(
                "refunds",
                doc! { "$not": { "$elemMatch": { "idempotency_key": key.as_str() } } },
            );
        }
        // The pending element, stamped with the server's clock.
        let element = doc! { "$mergeObjects": [
            literal(RefundFields::pending_document(refund)),
            {
                "created_at_ms": server_now_ms(),
                "attempt_started_at_ms": server_now_ms(),
                "attempt": literal(i64::from(refund_core::FIRST_ATTEMPT)),
                "updated_at_ms": server_now_ms(),
            },
        ] };
        let update = vec![doc! { "$set": {
            "refunds": { "$concatArrays": [refunds, [element]] },
            "pending_refund_id": literal(refund.id.as_str()),
        } }];
        for _ in 0..CONFLICT_ATTEMPTS {
            let admitted = self
                .payments
                .find_one_and_update(filter.clone(), update.clone())
                .projection(doc! { "_id": 1 })
                .await
                .map_err(|error| MongoStoreError::new("begin_refund", error));
            // The key is another payment's (the unique key_slot index);
            // within this payment the filter already refuses it.
            let admitted = match admitted {
                Err(error) if error.is_duplicate_key() => {
                    return Err(StoreError::IdempotencyKeyTaken)
                }
                other => other?,
            };
            if admitted.is_some() {
                return Ok(());
            }
            if let Some(conflict) = self.begin_conflict(refund).await? {
                return Err(conflict);
            }
        }
        // Others kept winning the slot between our attempts.
        Err(StoreError::RefundInProgress)
    }

    async fn retry_refund(
        &self,
        id: &RefundId,
        base_cancel_amount: Amount,
        checksum: Amount,
    ) -> Result<Refund, StoreError> {
        let id = id.as_str();
        // Every precondition is in the filter (the element may run again,
        // the payment's slot is free, no hold, the total unchanged), so the
        // check and the write are one atomic single-document step.
        let mut element = frees_its_key();
        element.insert("id", id);
        let filter = doc! {
            "refunds": { "$elemMatch": element },
            "pending_refund_id": Bson::Null,
            "on_hold": { "$ne": true },
            "payment.cancel_amount": base_cancel_amount.minor(),
        };
        let reopened = doc! { "$mergeObjects": [
            literal(state_document(&RefundState::PENDING)),
            {
                "base_cancel_amount": literal(base_cancel_amount.minor()),
                "checksum": literal(checksum.minor()),
                // A new attempt (counted on from the first for a refund
                // without a count); its place in listings (created_at_ms)
                // stays.
                "attempt_started_at_ms": server_now_ms(),
                "attempt": { "$add": [
                    { "$ifNull": ["$$refund.attempt", literal(i64::from(refund_core::FIRST_ATTEMPT))] },
                    literal(1_i64),
                ] },
                "updated_at_ms": server_now_ms(),
            },
        ] };
        let update = vec![doc! { "$set": {
            "refunds": { "$map": {
                "input": "$refunds",
                "as": "refund",
                "in": { "$cond": [
                    { "$eq": ["$$refund.id", literal(id)] },
                    { "$mergeObjects": ["$$refund", reopened] },
                    "$$refund",
                ] },
            } },
            "pending_refund_id": literal(id),
        } }];
        let updated = self
            .payments
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .projection(journal_projection())
            .await
            .map_err(store_error("retry_refund"))?;
        if let Some(document) = updated {
            let journal: JournalDocument = decode(document)?;
            return journal
                .into_refunds()?
                .into_iter()
                .find(|r| r.id.as_str() == id)
                .ok_or_else(|| StoreError::corrupt("re-opened refund missing from its payment"));
        }
        // Nothing was written: say which condition failed.
        let Some(document) = self
            .payments
            .find_one(doc! { "refunds.id": id })
            .await
            .map_err(store_error("retry_refund"))?
        else {
            return Err(StoreError::RefundNotFound);
        };
        let stored: PaymentDocument = decode(document)?;
        let fields =
            stored.refunds.iter().find(|r| r.id == id).ok_or_else(|| {
                StoreError::corrupt(format!("refund {id:?} vanished from its array"))
            })?;
        let current = fields.state()?;
        Err(if !current.frees_its_key() {
            StoreError::NotPending(current.status())
        } else if stored.pending_refund_id.is_some() {
            StoreError::RefundInProgress
        } else if stored.on_hold {
            StoreError::OnHold
        } else if stored.payment.cancel_amount != base_cancel_amount.minor() {
            StoreError::CancelAmountChanged
        } else {
            // Changed between our write and this read: a conflict like any.
            StoreError::RefundInProgress
        })
    }

    async fn finish_refund(
        &self,
        id: &RefundId,
        attempt: u32,
        state: &RefundState,
        snapshot: Option<&Payment>,
    ) -> Result<Settlement, StoreError> {
        let id = id.as_str();
        // The states this refund may move to `state` from
        // (RefundState::may_become): pending settles into anything else;
        // a not_applied failure may still turn out to have succeeded.
        let mut from = Vec::new();
        if !matches!(state, RefundState::Pending { .. }) {
            from.push(Bson::from(doc! { "status": "pending" }));
        }
        if matches!(
            state,
            RefundState::Succeeded { .. } | RefundState::NeedsReview(_)
        ) {
            from.push(is_not_applied().into());
        }
        if from.is_empty() {
            // Nothing may become pending: no write to try, only the reason.
            return Err(self
                .finish_conflict(id, attempt, state)
                .await?
                .unwrap_or_else(|| StoreError::corrupt("a refund may not become pending")));
        }
        // Only the attempt the verdict is about: one about an earlier
        // attempt matches nothing.
        let filter = doc! { "refunds": { "$elemMatch": {
            "id": id,
            "attempt": is_attempt(attempt),
            "$or": from,
        } } };
        let settled = doc! { "$mergeObjects": [
            literal(state_document(state)),
            { "updated_at_ms": server_now_ms() },
        ] };
        // One update pipeline settles the journal element, frees the
        // payment's slot if it names this refund, applies the snapshot (if
        // not older) and sets the hold, all in the same document, so all of
        // it happens or none.
        let mut changes = doc! {
            "refunds": { "$map": {
                "input": "$refunds",
                "as": "refund",
                "in": { "$cond": [
                    { "$eq": ["$$refund.id", literal(id)] },
                    { "$mergeObjects": ["$$refund", settled] },
                    "$$refund",
                ] },
            } },
            "pending_refund_id": { "$cond": [
                { "$eq": ["$pending_refund_id", literal(id)] },
                Bson::Null,
                "$pending_refund_id",
            ] },
        };
        if let RefundState::NeedsReview(_) = state {
            // A constant in `$literal` is a value in any stage; a bare
            // `true` is what `$project` reads as an inclusion flag.
            changes.insert("on_hold", literal(true));
        }
        if let Some(snapshot) = snapshot {
            changes.insert("payment", newer_snapshot(snapshot));
        }
        let update = vec![doc! { "$set": changes }];
        for _ in 0..CONFLICT_ATTEMPTS {
            // The whole document after the update: the refund, its payment
            // and the journal the answer lists, with no second read.
            let updated = self
                .payments
                .find_one_and_update(filter.clone(), update.clone())
                .return_document(ReturnDocument::After)
                .await
                .map_err(store_error("finish_refund"))?;
            if let Some(document) = updated {
                return settlement_of(decode(document)?, id);
            }
            if let Some(conflict) = self.finish_conflict(id, attempt, state).await? {
                return Err(conflict);
            }
        }
        Err(StoreError::corrupt(format!(
            "refund {id:?} may become {} but could not be settled",
            state.status()
        )))
    }

    async fn note_cancellation_id(
        &self,
        id: &RefundId,
        attempt: u32,
        cancellation_id: &str,
    ) -> Result<Refund, StoreError> {
        let id = id.as_str();
        // One element, matched by id, current attempt and pending status,
        // updated in place: atomic within its payment's document.
        let filter = doc! {
            "refunds": { "$elemMatch": {
                "id": id,
                "attempt": is_attempt(attempt),
                "status": RefundStatus::Pending.as_str(),
            } },
        };
        let noted = doc! { "$mergeObjects": [
            "$$refund",
            { "cancellation_id": literal(cancellation_id), "updated_at_ms": server_now_ms() },
        ] };
        let update = vec![doc! { "$set": {
            "refunds": { "$map": {
                "input": "$refunds",
                "as": "refund",
                "in": { "$cond": [
                    { "$and": [
                        { "$eq": ["$$refund.id", literal(id)] },
                        { "$eq": ["$$refund.status", literal(RefundStatus::Pending.as_str())] },
                    ] },
                    noted,
                    "$$refund",
                ] },
            } },
        } }];
        let updated = self
            .payments
            .find_one_and_update(filter, update)
            .return_document(ReturnDocument::After)
            .projection(journal_projection())
            .await
            .map_err(store_error("note_cancellation_id"))?;
        let document = match updated {
            Some(document) => document,
            None => {
                let Some(document) = self
                    .payments
                    .find_one(doc! { "refunds.id": id })
                    .projection(journal_projection())
                    .await
                    .map_err(store_error("note_cancellation_id"))?
                else {
                    return Err(StoreError::RefundNotFound);
                };
                let journal: JournalDocument = decode(document)?;
                let current = journal
                    .into_refunds()?
                    .into_iter()
                    .find(|r| r.id.as_str() == id)
                    .ok_or_else(|| StoreError::corrupt("refund missing from its payment"))?;
                return Err(if current.attempt != attempt {
                    StoreError::AttemptChanged {
                        current: current.attempt,
                    }
                } else {
                    StoreError::NotPending(current.status())
                });
            }
        };
        let journal: JournalDocument = decode(document)?;
        journal
            .into_refunds()?
            .into_iter()
            .find(|r| r.id.as_str() == id)
            .ok_or_else(|| StoreError::corrupt("noted refund missing from its payment"))
    }

    async fn resolve_review(
        &self,
        merchant_uid: &str,
        open_reviews: &[RefundId],
        by: &Actor,
        note: &str,
        snapshot: Option<&Payment>,
    ) -> Result<StoredPayment, StoreError> {
        // One update of the payment's document, conditional on the hold
        // and on its open reviews being exactly `open_reviews`: the open
        // reviews get the resolution (stamped with the server's
        // clock), the snapshot applies if not older, the hold goes.
        let resolution = doc! {
            "resolved_by": literal(by.as_str()),
            "resolved_at_ms": server_now_ms(),
            "review_note": literal(note),
            "updated_at_ms": server_now_ms(),
        };
        let mut changes = doc! {
            "refunds": { "$map": {
                "input": "$refunds",
                "as": "refund",
                "in": { "$cond": [
                    { "$and": [
                        { "$eq": ["$$refund.status", RefundStatus::NeedsReview.as_str()] },
                        { "$eq": [{ "$ifNull": ["$$refund.resolved_by", Bson::Null] }, Bson::Null] },
                    ] },
                    { "$mergeObjects": ["$$refund", resolution] },
                    "$$refund",
                ] },
            } },
            "on_hold": literal(false),
        };
        if let Some(snapshot) = snapshot.filter(|s| s.merchant_uid == merchant_uid) {
            changes.insert("payment", newer_snapshot(snapshot));
        }
        // Open: needs review, no resolution (`null` also matches an absent
        // field). Each id the caller saw is open, and no other is.
        let open = |id: Option<&[&str]>| {
            let mut element = doc! {
                "status": RefundStatus::NeedsReview.as_str(),
                "resolved_by": Bson::Null,
            };
            if let Some(ids) = id {
                element.insert("id", doc! { "$nin": ids.to_vec() });
            }
            element
        };
        let seen: Vec<&str> = open_reviews.iter().map(RefundId::as_str).collect();
        let mut reviews: Vec<Document> = seen
            .iter()
            .map(|id| {
                let mut element = open(None);
                element.insert("id", *id);
                doc! { "refunds": { "$elemMatch": element } }
            })
            .collect();
        reviews.push(doc! { "refunds": { "$not": { "$elemMatch": open(Some(&seen)) } } });
        let updated = self
            .payments
            .find_one_and_update(
                // Only while held, no refund of it is pending (it could
                // still apply) and its open reviews are the ones seen.
                doc! {
                    "_id": merchant_uid,
                    "on_hold": true,
                    "pending_refund_id": Bson::Null,
                    "$and": reviews,
                },
                vec![doc! { "$set": changes }],
            )
            .return_document(ReturnDocument::After)
            .projection(doc! { "refunds": 0 })
            .await
            .map_err(store_error("resolve_review"))?;
        if let Some(document) = updated {
            return decode::<PaymentDocument>(document)?.into_stored();
        }
        // Nothing was written: say why.
        let exists = self
            .payments
            .find_one(doc! { "_id": merchant_uid })
            .projection(doc! { "on_hold": 1, "pending_refund_id": 1 })
            .await
            .map_err(store_error("resolve_review"))?;
        Err(match exists {
            None => StoreError::PaymentNotFound,
            Some(held) if !held.get_bool("on_hold").unwrap_or(false) => StoreError::NotOnHold,
            Some(held) if held.get_str("pending_refund_id").is_ok() => StoreError::RefundInProgress,
            Some(_) => StoreError::ReviewChanged,
        })
    }

    async fn refund(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        let Some(journal) = self
            .journal(doc! { "refunds.id": id.as_str() }, "refund")
            .await?
        else {
            return Ok(None);
        };
        Ok(journal.into_refunds()?.into_iter().find(|r| &r.id == id))
    }

    async fn refund_by_idempotency_key(&self, key: &str) -> Result<Option<Refund>, StoreError> {
        let Some(journal) = self
            .journal(
                doc! { "refunds.key_slot": key },
                "refund_by_idempotency_key",
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(journal
            .into_refunds()?
            .into_iter()
            .find(|r| r.idempotency_key.as_deref() == Some(key)))
    }

    async fn refunds_of(&self, merchant_uid: &str, limit: u32) -> Result<Vec<Refund>, StoreError> {
        if limit == 0 {
            // `$limit` refuses 0.
            return Ok(Vec::new());
        }
        // Sorted and cut on the server, so at most `limit` refunds travel.
        let pipeline = vec![
            doc! { "$match": { "_id": merchant_uid } },
            doc! { "$project": journal_projection() },
            doc! { "$unwind": "$refunds" },
            doc! { "$sort": { "refunds.created_at_ms": -1, "refunds.id": -1 } },
            doc! { "$limit": i64::from(limit) },
        ];
        self.unwound_refunds(pipeline, "refunds_of").await
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
        // Query values, never expressions: a string in a `$match` equality
        // is compared as data, whatever it contains.
        let mut payments = Document::new();
        let mut element = Document::new();
        if let Some(merchant_uid) = &filter.merchant_uid {
            payments.insert("_id", merchant_uid.as_str());
        }
        if let Some(status) = filter.status {
            payments.insert("refunds.status", status.as_str());
            element.insert("refunds.status", status.as_str());
        }
        if let Some(cursor) = cursor {
            // Payments with a refund at or before the cursor's time (the
            // listing index), then exactly the elements after the cursor.
            payments.insert(
                "refunds.created_at_ms",
                doc! { "$lte": cursor.created_at_ms },
            );
            element.insert(
                "$or",
                vec![
                    doc! { "refunds.created_at_ms": { "$lt": cursor.created_at_ms } },
                    doc! {
                        "refunds.created_at_ms": cursor.created_at_ms,
                        "refunds.id": { "$lt": cursor.id.as_str() },
                    },
                ],
            );
        }
        let pipeline = vec![
            doc! { "$match": payments },
            doc! { "$project": journal_projection() },
            doc! { "$unwind": "$refunds" },
            doc! { "$match": element },
            doc! { "$sort": { "refunds.created_at_ms": -1, "refunds.id": -1 } },
            // One more than asked: it only says whether another page follows.
            doc! { "$limit": i64::from(limit) + 1 },
        ];
        let refunds = self.unwound_refunds(pipeline, "list_refunds").await?;
        Ok(RefundPage::from_overfetch(refunds, limit))
    }

    async fn stale_pending_refunds(
        &self,
        older_than: Duration,
        after: Option<&PendingCursor>,
        limit: u32,
    ) -> Result<Vec<Refund>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        // The cutoff is the server's `$$NOW`, evaluated by the same
        // aggregation that filters: one round trip, one clock.
        let cutoff = doc! { "$subtract": [server_now_ms(), older_than_ms] };
        let pipeline = vec![
            // The status/created_at index finds the payments with a pending
            // refund (at most one each, and only while a refund is in flight)...
            doc! { "$match": { "refunds.status": "pending" } },
            // ...then only their pending refunds older than the cutoff stay.
            doc! { "$project": journal_projection() },
            doc! { "$unwind": "$refunds" },
            doc! { "$match": {
                "refunds.status": "pending",
                // Its attempt began before the cutoff: an attempt starts
                // no earlier than its refund was journaled, and one without
                // a start (journaled before it was recorded) began then.
                "$expr": { "$and": [
                    { "$lt": ["$refunds.created_at_ms", cutoff.clone()] },
                    { "$lt": [
                        { "$ifNull": ["$refunds.attempt_started_at_ms", "$refunds.created_at_ms"] },
                        cutoff,
                    ] },
                ] },
            } },
            // The next page: after the cursor in the listing's order.
            doc! { "$match": match after {
                None => doc! {},
                Some(cursor) => doc! { "$or": [
                    { "refunds.created_at_ms": { "$gt": cursor.created_at_ms() } },
                    {
                        "refunds.created_at_ms": cursor.created_at_ms(),
                        "refunds.id": { "$gt": cursor.id().as_str() },
                    },
                ] },
            } },
            doc! { "$sort": { "refunds.created_at_ms": 1, "refunds.id": 1 } },
            doc! { "$limit": i64::from(limit) },
        ];
        self.unwound_refunds(pipeline, "stale_pending_refunds")
            .await
    }

    /// A write that matches no document (no order id is empty), so it
    /// changes nothing: unlike the `ping` command it fails where refunds
    /// would, e.g. on a secondary or a primary stepping down
    /// (`NotWritablePrimary`: unavailable).
    async fn ping(&self) -> Result<(), StoreError> {
        self.payments
            .update_one(doc! { "_id": "" }, doc! { "$set": { "write_probe": true } })
            .await
            .map_err(store_error("ping"))?;
        Ok(())
    }
}

/// The settled refund `id`, its payment and the payment's newest refunds
/// (sorted as `refunds_of` sorts them), out of the payment's whole document.
fn settlement_of(document: PaymentDocument, id: &str) -> Result<Settlement, StoreError> {
    let PaymentDocument {
        merchant_uid,
        payment,
        pending_refund_id,
        on_hold,
        refunds,
    } = document;
    let currency = payment.currency()?;
    let mut refunds = refunds
        .into_iter()
        .map(|fields| fields.into_refund(merchant_uid.clone(), currency))
        .collect::<Result<Vec<_>, _>>()?;
    let refund = refunds
        .iter()
        .find(|r| r.id.as_str() == id)
        .cloned()
        .ok_or_else(|| StoreError::corrupt("settled refund missing from its payment"))?;
    let payment = PaymentDocument {
        merchant_uid,
        payment,
        pending_refund_id,
        on_hold,
        refunds: Vec::new(),
    }
    .into_stored()?;
    refunds.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
    refunds.truncate(usize::try_from(SETTLEMENT_RECENT_REFUNDS).unwrap_or(usize::MAX));
    Ok(Settlement::new(refund, payment, refunds))
}
