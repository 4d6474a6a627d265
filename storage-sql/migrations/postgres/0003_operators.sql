-- Operators: each refund records its currency (a listing across payments
-- shows amounts without reading their payments), who asked for it, and how
-- an operator resolved its review.
ALTER TABLE refund_journal
    ADD COLUMN currency VARCHAR(8),
    ADD COLUMN requested_by VARCHAR(64),
    ADD COLUMN resolved_by VARCHAR(64),
    ADD COLUMN resolved_at_ms BIGINT,
    ADD COLUMN review_note VARCHAR(500);

-- Existing refunds are in their payment's currency; who asked them was not
-- recorded, and stays unknown (NULL).
UPDATE refund_journal AS j SET currency = p.currency
FROM refund_payments AS p WHERE p.merchant_uid = j.merchant_uid;
ALTER TABLE refund_journal ALTER COLUMN currency SET NOT NULL;
-- A resolution is whole or absent, and only a review has one.
ALTER TABLE refund_journal ADD CONSTRAINT refund_journal_resolution
    CHECK ((resolved_by IS NULL) = (resolved_at_ms IS NULL)
       AND (resolved_by IS NULL) = (review_note IS NULL)
       AND (resolved_by IS NULL OR status = 'needs_review'));

-- Listings walk the journal newest first by (created_at_ms, id), keyset
-- pagination: across payments, by status, and by payment (which replaces
-- the payment index without the id).
CREATE INDEX refund_journal_listing ON refund_journal (created_at_ms, id);
CREATE INDEX refund_journal_listing_by_status ON refund_journal (status, created_at_ms, id);
CREATE INDEX refund_journal_listing_by_payment ON refund_journal (merchant_uid, created_at_ms, id);
DROP INDEX refund_journal_by_payment;
