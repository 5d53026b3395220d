-- A customer's first paid invoice (the start of its paying life, which the reactions read for
-- every customer a batch touches), found as the first entry of this index instead of by
-- ranking all of the customer's paid invoices.
CREATE INDEX invoices_first_paid ON invoices (customer, (COALESCE(paid_at, created, 0)), id)
    WHERE status = 'paid' AND amount_paid > 0;
