-- Ids and keys are VARBINARY: compared byte for byte, so `Order-42` is not
-- `order-42` and a trailing space matters (MySQL's and MariaDB's PAD SPACE
-- collations, utf8mb4_bin included, ignore trailing spaces). The byte limits
-- hold 255 four-byte characters.
-- MySQL commits DDL implicitly, so every statement here is re-runnable
-- (IF NOT EXISTS, indexes inline) in case a run stops half way.

-- Payments as the gateway last reported them, plus the refund lock.
-- Amounts are integers in the currency's minor unit.
CREATE TABLE IF NOT EXISTS refund_payments (
    merchant_uid      VARBINARY(1020) NOT NULL,
    imp_uid           VARBINARY(1020) NOT NULL,
    pay_method        VARCHAR(64)     NOT NULL,
    currency          VARCHAR(8)      NOT NULL,
    amount            BIGINT          NOT NULL,
    cancel_amount     BIGINT          NOT NULL,
    status            VARCHAR(64)     NOT NULL,
    paid_at           BIGINT          NOT NULL,
    -- JSON array of cancellations; amounts inside are integer minor units.
    cancel_history    MEDIUMTEXT      NOT NULL,
    pending_refund_id VARBINARY(64)   NULL,
    on_hold           BOOLEAN         NOT NULL DEFAULT FALSE,
    updated_at_ms     BIGINT          NOT NULL,
    PRIMARY KEY (merchant_uid),
    KEY refund_payments_imp_uid (imp_uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- The write-ahead refund journal.
CREATE TABLE IF NOT EXISTS refund_journal (
    id                    VARBINARY(64)   NOT NULL,
    merchant_uid          VARBINARY(1020) NOT NULL,
    imp_uid               VARBINARY(1020) NOT NULL,
    amount                BIGINT          NOT NULL,
    base_cancel_amount    BIGINT          NOT NULL,
    checksum              BIGINT          NOT NULL,
    reason                TEXT            NULL,
    idempotency_key       VARBINARY(1020) NULL,
    fingerprint           VARCHAR(128)    NOT NULL,
    refund_account_masked VARCHAR(64)     NULL,
    status                VARBINARY(16)   NOT NULL,
    gateway_code          BIGINT          NULL,
    gateway_message       TEXT            NULL,
    created_at_ms         BIGINT          NOT NULL,
    updated_at_ms         BIGINT          NOT NULL,
    PRIMARY KEY (id),
    -- NULL keys are distinct, so refunds without a key never collide.
    UNIQUE KEY refund_journal_idempotency_key (idempotency_key),
    -- The reconciliation sweep: pending refunds, oldest first.
    KEY refund_journal_sweep (status, created_at_ms),
    -- A payment's refunds, newest first.
    KEY refund_journal_by_payment (merchant_uid, created_at_ms),
    CONSTRAINT refund_journal_status
        CHECK (status IN ('pending', 'succeeded', 'failed', 'needs_review')),
    CONSTRAINT refund_journal_payment
        FOREIGN KEY (merchant_uid) REFERENCES refund_payments (merchant_uid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
