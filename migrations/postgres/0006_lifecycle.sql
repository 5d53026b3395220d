-- Lifecycle email (issue 7): product activity reported by the founder's app, the at-risk
-- state it drives, experiment variants, and the one-click unsubscribe URL of marketing mail.

-- Activity per customer per UTC day (day = unix seconds / 86400): batches add to it, so
-- storage grows with customers × active days, not with raw events.
CREATE TABLE activity_daily (
    customer  TEXT NOT NULL,
    day       BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (customer, day)
);

-- First and last activity ever seen per customer (a customer with no row was never reported).
CREATE TABLE customer_activity (
    customer  TEXT PRIMARY KEY NOT NULL,
    first_at  BIGINT NOT NULL,
    last_at   BIGINT NOT NULL,
    total     BIGINT NOT NULL
);

-- One row per customer that was ever at risk. status 'at_risk' while it lasts; 'reengaged'
-- when activity came back after `since`; 'ended' when the customer stopped paying.
-- The re-engagement series of one episode is keyed by `since` (reengage:<customer>:<since>:dayN).
CREATE TABLE at_risk (
    customer          TEXT PRIMARY KEY NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('at_risk', 'reengaged', 'ended')),
    reason            TEXT NOT NULL CHECK (reason IN ('inactive', 'activity_drop')),
    since             BIGINT NOT NULL,
    last_activity_at  BIGINT,
    recent_week       BIGINT NOT NULL,
    baseline_week     BIGINT NOT NULL,
    resolved_at       BIGINT
);
CREATE INDEX at_risk_status ON at_risk (status, since);

-- One row per lifecycle series started (its outbox rows share case_key). Stopping a series
-- marks it here and cancels its pending rows; the index finds a customer's live series.
CREATE TABLE lifecycle_series (
    case_key      TEXT PRIMARY KEY NOT NULL,
    campaign      TEXT NOT NULL CHECK (campaign IN ('onboarding', 'trial_ending', 'winback', 'reengagement')),
    customer      TEXT NOT NULL,
    subscription  TEXT,
    started_at    BIGINT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'stopped')),
    stopped_at    BIGINT,
    stop_reason   TEXT
);
CREATE INDEX lifecycle_series_customer ON lifecycle_series (customer, campaign, status);

-- A/B experiments: the variant a case or session was in, recorded when it began.
ALTER TABLE dunning_cases ADD COLUMN experiment TEXT;
ALTER TABLE dunning_cases ADD COLUMN variant TEXT;
ALTER TABLE cancel_sessions ADD COLUMN experiment TEXT;
ALTER TABLE cancel_sessions ADD COLUMN variant TEXT;

-- Marketing rows carry their signed unsubscribe URL for the List-Unsubscribe header (RFC 8058).
ALTER TABLE outbox ADD COLUMN unsubscribe_url TEXT;

-- The lifecycle reactions look these up per event inside the ingest transaction.
CREATE INDEX invoices_customer ON invoices (customer);
CREATE INDEX payment_methods_customer ON payment_methods (customer);
