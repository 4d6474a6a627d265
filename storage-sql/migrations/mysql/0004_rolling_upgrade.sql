-- Expand step for rolling upgrades, and each attempt's own start.
--
-- While instances are replaced one by one, an instance of the release
-- before 0003 keeps journaling refunds into the migrated table without the
-- columns 0003 added: its rows leave `currency` NULL (read as the
-- payment's currency; 0003 never required it here) and `requested_by`
-- NULL (unknown). A later release may impose NOT NULL once no instance of
-- that release can run (the contract step).
--
-- A refund run again (retry_refund) keeps `created_at_ms`, the key its
-- listings page on; the start of its current attempt, which its in-flight
-- bound runs from, is `attempt_started_at_ms`. NULL (every row journaled
-- before this migration, and rows the older release writes) means the
-- attempt began when the refund was journaled, so no row is rewritten.
--
-- Each run of a refund is an attempt, counted in `attempt` (1 for the
-- first, one more each time retry_refund runs it again): a verdict names
-- the attempt it was reached about, and settles the refund only while that
-- attempt is still its current one, so a verdict about an earlier attempt
-- never settles the attempt now on the wire. NULL (rows journaled before
-- this migration, and rows the older release writes) means the first.
--
-- MySQL commits DDL on its own: each ALTER runs only while its column is
-- missing, so a run that stops before its history row runs it again.
SET @refund_attempts = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'refund_journal'
       AND column_name = 'attempt_started_at_ms') = 0,
    'ALTER TABLE refund_journal ADD COLUMN attempt_started_at_ms BIGINT NULL',
    'DO 0');
PREPARE refund_attempts FROM @refund_attempts;
EXECUTE refund_attempts;
DEALLOCATE PREPARE refund_attempts;
SET @refund_attempt_count = IF(
    (SELECT COUNT(*) FROM information_schema.columns
     WHERE table_schema = DATABASE() AND table_name = 'refund_journal'
       AND column_name = 'attempt') = 0,
    'ALTER TABLE refund_journal ADD COLUMN attempt BIGINT NULL',
    'DO 0');
PREPARE refund_attempt_count FROM @refund_attempt_count;
EXECUTE refund_attempt_count;
DEALLOCATE PREPARE refund_attempt_count;
