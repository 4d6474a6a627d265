-- Operators: each refund records its currency (a listing across payments
-- shows amounts without reading their payments), who asked for it, and how
-- an operator resolved its review; listings walk the journal newest first
-- by (created_at_ms, id), keyset pagination, across payments, by status and
-- by payment.
--
-- MySQL commits DDL on its own, so a run that stops between this file's
-- statements and its history row runs it again: the ALTER (one statement,
-- atomic on InnoDB) runs only while it has not run, and the UPDATE only
-- touches rows it has not filled yet. The old payment index stays: the
-- foreign key is declared on it.
SET @refund_operators = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'refund_journal'
       AND column_name = 'requested_by') = 0,
    'ALTER TABLE refund_journal
         ADD COLUMN currency VARCHAR(8) NULL,
         ADD COLUMN requested_by VARCHAR(64) NULL,
         ADD COLUMN resolved_by VARCHAR(64) NULL,
         ADD COLUMN resolved_at_ms BIGINT NULL,
         ADD COLUMN review_note VARCHAR(500) NULL,
         ADD KEY refund_journal_listing (created_at_ms, id),
         ADD KEY refund_journal_listing_by_status (status, created_at_ms, id),
         ADD KEY refund_journal_listing_by_payment (merchant_uid, created_at_ms, id)',
    'DO 0');
PREPARE refund_operators FROM @refund_operators;
EXECUTE refund_operators;
DEALLOCATE PREPARE refund_operators;

-- Existing refunds are in their payment's currency; who asked them was not
-- recorded, and stays unknown (NULL).
UPDATE refund_journal AS j JOIN refund_payments AS p ON p.merchant_uid = j.merchant_uid
SET j.currency = p.currency
WHERE j.currency IS NULL;
