-- Payments as the gateway last reported them, plus the refund lock.
-- Amounts are integers in the currency's minor unit.
CREATE TABLE refund_payments (
    merchant_uid      VARCHAR(255) PRIMARY KEY,
    imp_uid           VARCHAR(255) NOT NULL,
    pay_method        VARCHAR(64)  NOT NULL,
    currency          VARCHAR(8)   NOT NULL,
    amount            BIGINT       NOT NULL,
    cancel_amount     BIGINT       NOT NULL,
    status            VARCHAR(64)  NOT NULL,
    paid_at           BIGINT       NOT NULL,
    -- JSON array of cancellations; amounts inside are integer minor units.
    cancel_history    TEXT         NOT NULL,
    pending_refund_id VARCHAR(64),
    on_hold           BOOLEAN      NOT NULL DEFAULT FALSE,
    updated_at_ms     BIGINT       NOT NULL
);
CREATE INDEX refund_payments_imp_uid ON refund_payments (imp_uid);

-- The write-ahead refund journal.
CREATE TABLE refund_journal (
    id                    VARCHAR(64)  PRIMARY KEY,
    merchant_uid          VARCHAR(255) NOT NULL REFERENCES refund_payments (merchant_uid),
    imp_uid               VARCHAR(255) NOT NULL,
    amount                BIGINT       NOT NULL,
    base_cancel_amount    BIGINT       NOT NULL,
    checksum              BIGINT       NOT NULL,
    reason                TEXT,
    idempotency_key       VARCHAR(255),
    fingerprint           VARCHAR(128) NOT NULL,
    refund_account_masked VARCHAR(64),
    status                VARCHAR(16)  NOT NULL
        CHECK (status IN ('pending', 'succeeded', 'failed', 'needs_review')),
    gateway_code          BIGINT,
    gateway_message       TEXT,
    created_at_ms         BIGINT       NOT NULL,
    updated_at_ms         BIGINT       NOT NULL,
    -- NULL keys are distinct, so refunds without a key never collide.
    CONSTRAINT refund_journal_idempotency_key UNIQUE (idempotency_key)
);
-- The reconciliation sweep: pending refunds, oldest first.
CREATE INDEX refund_journal_sweep ON refund_journal (status, created_at_ms);
-- A payment's refunds, newest first.
CREATE INDEX refund_journal_by_payment ON refund_journal (merchant_uid, created_at_ms);
