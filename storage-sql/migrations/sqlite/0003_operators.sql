-- Operators: each refund records its currency (a listing across payments
-- shows amounts without reading their payments), who asked for it, and how
-- an operator resolved its review.
ALTER TABLE refund_journal ADD COLUMN currency TEXT CHECK (length(currency) <= 8);
ALTER TABLE refund_journal ADD COLUMN requested_by TEXT CHECK (length(requested_by) <= 64);
ALTER TABLE refund_journal ADD COLUMN resolved_by TEXT CHECK (length(resolved_by) <= 64);
ALTER TABLE refund_journal ADD COLUMN resolved_at_ms INTEGER;
ALTER TABLE refund_journal ADD COLUMN review_note TEXT CHECK (length(review_note) <= 500);

-- Existing refunds are in their payment's currency; who asked them was not
-- recorded, and stays unknown (NULL).
UPDATE refund_journal
SET currency = (SELECT p.currency FROM refund_payments AS p
                WHERE p.merchant_uid = refund_journal.merchant_uid);

-- Listings walk the journal newest first by (created_at_ms, id), keyset
-- pagination: across payments, by status, and by payment (which replaces
-- the payment index without the id).
CREATE INDEX refund_journal_listing ON refund_journal (created_at_ms, id);
CREATE INDEX refund_journal_listing_by_status ON refund_journal (status, created_at_ms, id);
CREATE INDEX refund_journal_listing_by_payment ON refund_journal (merchant_uid, created_at_ms, id);
DROP INDEX refund_journal_by_payment;
