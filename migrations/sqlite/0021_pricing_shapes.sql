-- Pricing beyond unit_amount × quantity. A price's tiers come only with `expand[]=tiers`
-- (`holdfast sync` asks for them; events carry them when Stripe includes them): kept once
-- seen, as a later event without them says nothing about them.
ALTER TABLE prices ADD COLUMN billing_scheme TEXT;
ALTER TABLE prices ADD COLUMN tiers_mode TEXT;
-- JSON array of {up_to, unit_amount, flat_amount}; NULL while unknown.
ALTER TABLE prices ADD COLUMN tiers TEXT;
ALTER TABLE prices ADD COLUMN usage_type TEXT;
ALTER TABLE prices ADD COLUMN tax_behavior TEXT;

-- The non-proration lines of finalized subscription invoices, per subscription item: a
-- metered item's MRR is its latest line, and a tax-inclusive item's tax share is read from it.
CREATE TABLE subscription_item_lines (
    invoice_id         TEXT NOT NULL,
    line_id            TEXT NOT NULL,
    subscription_id    TEXT,
    subscription_item  TEXT NOT NULL,
    price_id           TEXT,
    finalized_at       BIGINT NOT NULL,
    amount             BIGINT NOT NULL,
    inclusive_tax      BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, line_id)
);
CREATE INDEX subscription_item_lines_subscription ON subscription_item_lines (subscription_id);
