-- Every email is first a row here, written in the transaction of whatever caused it.
-- dedupe_key is the idempotency key ("dunning:in_1:day0"): one email per (case, step).
-- A row is due when status = 'pending', next_attempt_at <= now and no live lease
-- (claimed_until NULL or past). claim_token guards the outcome of one claim.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key       TEXT NOT NULL UNIQUE,
    case_key         TEXT,
    category         TEXT NOT NULL CHECK (category IN ('transactional', 'marketing')),
    customer         TEXT,
    recipient        TEXT NOT NULL,
    template         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body_text        TEXT NOT NULL,
    body_html        TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    claim_token      TEXT,
    last_error       TEXT,
    message_id       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_case ON outbox (case_key);

-- One failed-payment case per invoice. opened_at is the earliest failure's event time;
-- silent cases (failure older than the horizon when it arrived) record state but send nothing.
CREATE TABLE dunning_cases (
    invoice_id           TEXT PRIMARY KEY NOT NULL,
    customer             TEXT,
    subscription         TEXT,
    kind                 TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('open', 'recovered', 'lost')),
    silent               INTEGER NOT NULL CHECK (silent IN (0, 1)),
    currency             TEXT,
    amount_due           BIGINT NOT NULL,
    opened_at            BIGINT NOT NULL,
    next_payment_attempt BIGINT,
    closed_at            BIGINT,
    close_reason         TEXT,
    recovered_amount     BIGINT,
    recovered_after_secs BIGINT,
    emails_before_close  BIGINT,
    last_failure_at      BIGINT NOT NULL
);
CREATE INDEX dunning_cases_subscription ON dunning_cases (subscription);

-- Cards per customer (payment methods and legacy sources), for expiry warnings.
CREATE TABLE payment_methods (
    id           TEXT PRIMARY KEY NOT NULL,
    customer     TEXT,
    brand        TEXT,
    last4        TEXT,
    exp_month    BIGINT,
    exp_year     BIGINT,
    src_created  BIGINT NOT NULL,
    src_event_id TEXT NOT NULL
);
CREATE INDEX payment_methods_expiry ON payment_methods (exp_year, exp_month);

-- Addresses we must not mail. scope 'all' (permanent bounce, complaint) blocks every email;
-- scope 'marketing' (unsubscribe) blocks marketing only: transactional mail still goes.
CREATE TABLE suppressions (
    email       TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('all', 'marketing')),
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (email, scope)
);
