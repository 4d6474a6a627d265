-- The journal's state is typed: a failure records its kind (what it proves
-- about the money) and a text code (i'mport's numeric code, PortOne's error
-- type); a refund records the gateway cancellation it is credited with.
--
-- One ALTER (atomic on InnoDB): the integer gateway_code becomes the text
-- failure_code, existing values converted. The UPDATE below is re-runnable.
ALTER TABLE refund_journal
    CHANGE COLUMN gateway_code failure_code VARCHAR(64) NULL,
    ADD COLUMN failure_kind VARBINARY(16) NULL,
    ADD COLUMN cancellation_id VARBINARY(1020) NULL;

-- Existing failures: a gateway code means i'mport refused it; without one it
-- either never left or never applied, and in both cases nothing moved.
UPDATE refund_journal
SET failure_kind = CASE WHEN failure_code IS NULL THEN 'not_applied' ELSE 'rejected' END
WHERE status = 'failed' AND failure_kind IS NULL;
