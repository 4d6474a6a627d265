-- Expand step for rolling upgrades, and each attempt's own start.
--
-- While instances are replaced one by one, an instance of the release
-- before 0003 keeps journaling refunds into the migrated table without the
-- columns 0003 added: its inserts leave `currency` NULL, which 0003's
-- NOT NULL refused (the refund failed on that instance). The column takes
-- NULL again (read as the payment's currency); `requested_by` NULL stays
-- unknown. A later release may impose NOT NULL once no instance of that
-- release can run (the contract step). 0003's resolution constraint stays:
-- that release never writes the resolution columns nor moves a refund out
-- of `needs_review`.
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
ALTER TABLE refund_journal
    ALTER COLUMN currency DROP NOT NULL,
    ADD COLUMN attempt_started_at_ms BIGINT,
    ADD COLUMN attempt BIGINT;
