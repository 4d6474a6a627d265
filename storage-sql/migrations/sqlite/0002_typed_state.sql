-- The journal's state is typed: a failure records its kind (what it proves
-- about the money) and a text code (i'mport's numeric code, PortOne's error
-- type); a refund records the gateway cancellation it is credited with.
ALTER TABLE refund_journal ADD COLUMN failure_kind TEXT
    CHECK (failure_kind IN ('rejected', 'not_sent', 'not_applied'));
ALTER TABLE refund_journal ADD COLUMN failure_code TEXT
    CHECK (length(failure_code) <= 64);
ALTER TABLE refund_journal ADD COLUMN cancellation_id TEXT
    CHECK (length(cancellation_id) <= 255);

-- Existing failures: a gateway code means i'mport refused it; without one it
-- either never left or never applied, and in both cases nothing moved.
UPDATE refund_journal
SET failure_kind = CASE WHEN gateway_code IS NULL THEN 'not_applied' ELSE 'rejected' END,
    failure_code = CAST(gateway_code AS TEXT)
WHERE status = 'failed';

ALTER TABLE refund_journal DROP COLUMN gateway_code;
