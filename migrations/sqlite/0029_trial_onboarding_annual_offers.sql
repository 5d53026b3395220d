-- The trial onboarding series and the annual-plan offer are lifecycle series too; each series
-- records the arm its customer was assigned when it began (`treated` or `holdout`) so its
-- outcome can be compared against the holdout. SQLite cannot change a CHECK in place: the
-- table is rebuilt with its rows.
CREATE TABLE lifecycle_series_new (
    case_key      TEXT PRIMARY KEY NOT NULL,
    campaign      TEXT NOT NULL CHECK (campaign IN ('onboarding', 'trial_onboarding', 'trial_ending', 'winback',
                                                   'reengagement', 'annual_offer')),
    customer      TEXT NOT NULL,
    subscription  TEXT,
    started_at    BIGINT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'stopped')),
    stopped_at    BIGINT,
    stop_reason   TEXT,
    arm           TEXT
);
INSERT INTO lifecycle_series_new (case_key, campaign, customer, subscription, started_at, status, stopped_at, stop_reason)
    SELECT case_key, campaign, customer, subscription, started_at, status, stopped_at, stop_reason FROM lifecycle_series;
DROP TABLE lifecycle_series;
ALTER TABLE lifecycle_series_new RENAME TO lifecycle_series;
CREATE INDEX lifecycle_series_customer ON lifecycle_series (customer, campaign, status);
CREATE INDEX lifecycle_series_campaign ON lifecycle_series (campaign, started_at);

-- One annual-plan offer per subscription: what was offered (the monthly item and the yearly
-- price), when, and whether the customer accepted it. `acting_until` is the lease a confirm
-- request holds while Stripe answers, so a repeated POST never updates twice.
CREATE TABLE annual_offers (
    subscription  TEXT PRIMARY KEY NOT NULL,
    customer      TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    from_price    TEXT NOT NULL,
    to_price      TEXT NOT NULL,
    offered_at    BIGINT NOT NULL,
    acting_until  BIGINT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    accepted_at   BIGINT
);
CREATE INDEX annual_offers_customer ON annual_offers (customer);
