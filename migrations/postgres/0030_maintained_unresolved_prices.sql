-- The items whose amount is unknown (a tiered price without its tiers, a metered one without
-- a finalized invoice line) are counted with the other maintained figures, per month and
-- currency, instead of from the live subscriptions' history on every read.
ALTER TABLE metric_month_totals ADD COLUMN unresolved_prices BIGINT NOT NULL DEFAULT 0;
ALTER TABLE metric_tail_totals ADD COLUMN unresolved_prices BIGINT NOT NULL DEFAULT 0;

-- The customers' stored figures lack the new count: the first start rebuilds them all from
-- the history before serving (as for a database from before the figures were maintained).
DELETE FROM metric_customers;
DELETE FROM metric_due;
DELETE FROM metric_month_totals;
DELETE FROM metric_tail_totals;
DELETE FROM metric_cohort_totals;
UPDATE metric_state SET built = 0 WHERE id = 1;

-- The dashboard's figures count, per month: trials ending, long-interval subscriptions ended
-- and renewals paid in the month; found by these instead of reading every row.
CREATE INDEX subscriptions_trial_end ON subscriptions (trial_end);
CREATE INDEX subscriptions_ended_at ON subscriptions (ended_at);
CREATE INDEX invoices_paid_or_created ON invoices ((COALESCE(paid_at, created)));
