-- Payments as the gateway last reported them, plus the refund lock.
-- Amounts are integers in the currency's minor unit. STRICT tables refuse
-- values of the wrong type instead of storing them as something else.
CREATE TABLE refund_payments (
    merchant_uid      TEXT    NOT NULL PRIMARY KEY CHECK (length(merchant_uid) <= 255),
    imp_uid           TEXT    NOT NULL CHECK (length(imp_uid) <= 255),
    pay_method        TEXT    NOT NULL CHECK (length(pay_method) <= 64),
    currency          TEXT    NOT NULL CHECK (length(currency) <= 8),
    amount            INTEGER NOT NULL,
    cancel_amount     INTEGER NOT NULL,
    status            TEXT    NOT NULL CHECK (length(status) <= 64),
    paid_at           INTEGER NOT NULL,
    -- JSON array of cancellations; amounts inside are integer minor units.
    cancel_history    TEXT    NOT NULL,
    pending_refund_id TEXT    CHECK (length(pending_refund_id) <= 64),
    on_hold           INTEGER NOT NULL DEFAULT 0 CHECK (on_hold IN (0, 1)),
    updated_at_ms     INTEGER NOT NULL
) STRICT;
CREATE INDEX refund_payments_imp_uid ON refund_payments (imp_uid);

-- The write-ahead refund journal.
CREATE TABLE refund_journal (
    id                    TEXT    NOT NULL PRIMARY KEY CHECK (length(id) <= 64),
    merchant_uid          TEXT    NOT NULL REFERENCES refund_payments (merchant_uid),
    imp_uid               TEXT    NOT NULL CHECK (length(imp_uid) <= 255),
    amount                INTEGER NOT NULL,
    base_cancel_amount    INTEGER NOT NULL,
    checksum              INTEGER NOT NULL,
    reason                TEXT,
    idempotency_key       TEXT    CHECK (length(idempotency_key) <= 255),
    fingerprint           TEXT    NOT NULL CHECK (length(fingerprint) <= 128),
    refund_account_masked TEXT    CHECK (length(refund_account_masked) <= 64),
    status                TEXT    NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'needs_review')),
    gateway_code          INTEGER,
    gateway_message       TEXT,
    created_at_ms         INTEGER NOT NULL,
    updated_at_ms         INTEGER NOT NULL
) STRICT;
-- NULL keys are distinct, so refunds without a key never collide.
CREATE UNIQUE INDEX refund_journal_idempotency_key ON refund_journal (idempotency_key);
-- The reconciliation sweep: pending refunds, oldest first.
CREATE INDEX refund_journal_sweep ON refund_journal (status, created_at_ms);
-- A payment's refunds, newest first.
CREATE INDEX refund_journal_by_payment ON refund_journal (merchant_uid, created_at_ms);
