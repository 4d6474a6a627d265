-- The journal's state is typed: a failure records its kind (what it proves
-- about the money) and a text code (i'mport's numeric code, PortOne's error
-- type); a refund records the gateway cancellation it is credited with.
--
-- MySQL commits DDL on its own, so a run that stops between this file's
-- statements and its history row runs it again: the ALTER (one statement,
-- atomic on InnoDB: the integer gateway_code becomes the text
-- failure_code, existing values converted) runs only while it has not run,
-- and the UPDATE only touches rows it has not mapped yet.
SET @refund_typed_state = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'refund_journal'
       AND column_name = 'failure_kind') = 0,
    'ALTER TABLE refund_journal
         CHANGE COLUMN gateway_code failure_code VARCHAR(64) NULL,
         ADD COLUMN failure_kind VARBINARY(16) NULL,
         ADD COLUMN cancellation_id VARBINARY(1020) NULL,
         ADD CONSTRAINT refund_journal_failure_kind
             CHECK (failure_kind IN (''rejected'', ''not_sent'', ''not_applied''))',
    'DO 0');
PREPARE refund_typed_state FROM @refund_typed_state;
EXECUTE refund_typed_state;
DEALLOCATE PREPARE refund_typed_state;

-- Existing failures: a gateway code means i'mport refused it; without one it
-- either never left or never applied, and in both cases nothing moved.
UPDATE refund_journal
SET failure_kind = CASE WHEN failure_code IS NULL THEN 'not_applied' ELSE 'rejected' END
WHERE status = 'failed' AND failure_kind IS NULL;
