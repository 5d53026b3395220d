-- Every verified Stripe event, stored once by id. The raw body is kept verbatim.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY NOT NULL,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,
    livemode     INTEGER NOT NULL CHECK (livemode IN (0, 1)),
    api_version  TEXT,
    account      TEXT,
    payload      TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE INDEX stripe_events_type_created ON stripe_events (type, created);

-- Latest snapshot per object. (src_rank, src_created, src_event_id) is the watermark of the
-- event that wrote it: a snapshot replaces the row only when its watermark is greater, so
-- the result does not depend on delivery order. src_rank puts terminal states above live ones.
-- The object's full JSON is the event's payload: stripe_events.id = src_event_id.
CREATE TABLE customers (
    id            TEXT PRIMARY KEY NOT NULL,
    email         TEXT,
    name          TEXT,
    created       BIGINT,
    deleted       INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    src_rank      BIGINT NOT NULL,
    src_created   BIGINT NOT NULL,
    src_event_id  TEXT NOT NULL
);

CREATE TABLE subscriptions (
    id                    TEXT PRIMARY KEY NOT NULL,
    customer              TEXT,
    status                TEXT NOT NULL,
    currency              TEXT,
    created               BIGINT,
    start_date            BIGINT,
    trial_start           BIGINT,
    trial_end             BIGINT,
    current_period_start  BIGINT,
    current_period_end    BIGINT,
    cancel_at_period_end  INTEGER NOT NULL CHECK (cancel_at_period_end IN (0, 1)),
    cancel_at             BIGINT,
    canceled_at           BIGINT,
    ended_at              BIGINT,
    cancel_reason         TEXT,
    cancel_feedback       TEXT,
    cancel_comment        TEXT,
    pause_behavior        TEXT,
    pause_resumes_at      BIGINT,
    discounts             TEXT NOT NULL,
    base_mrr              DOUBLE PRECISION NOT NULL,
    src_rank              BIGINT NOT NULL,
    src_created           BIGINT NOT NULL,
    src_event_id          TEXT NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer);

CREATE TABLE subscription_items (
    subscription_id  TEXT NOT NULL,
    item_id          TEXT NOT NULL,
    price_id         TEXT,
    product          TEXT,
    unit_amount      BIGINT,
    currency         TEXT,
    recurring_interval TEXT,
    interval_count   BIGINT,
    quantity         BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, item_id)
);

CREATE TABLE invoices (
    id                    TEXT PRIMARY KEY NOT NULL,
    customer              TEXT,
    subscription          TEXT,
    status                TEXT,
    billing_reason        TEXT,
    currency              TEXT,
    amount_due            BIGINT NOT NULL,
    amount_paid           BIGINT NOT NULL,
    amount_remaining      BIGINT NOT NULL,
    attempt_count         BIGINT NOT NULL,
    next_payment_attempt  BIGINT,
    hosted_invoice_url    TEXT,
    created               BIGINT,
    paid_at               BIGINT,
    src_rank              BIGINT NOT NULL,
    src_created           BIGINT NOT NULL,
    src_event_id          TEXT NOT NULL
);
CREATE INDEX invoices_subscription ON invoices (subscription);

-- Discounts as Stripe reports them (customer.discount.* and expanded subscription discounts).
CREATE TABLE discounts (
    id             TEXT PRIMARY KEY NOT NULL,
    customer       TEXT,
    subscription   TEXT,
    coupon_id      TEXT,
    percent_off    DOUBLE PRECISION,
    amount_off     BIGINT,
    currency       TEXT,
    duration       TEXT,
    starts_at      BIGINT,
    ends_at        BIGINT,
    deleted        INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    src_rank       BIGINT NOT NULL,
    src_created    BIGINT NOT NULL,
    src_event_id   TEXT NOT NULL
);

-- One row per subscription snapshot, at the event's own time: the history that metrics read.
-- A set keyed by (subscription, event), so delivery order and duplicates don't matter; the
-- state at time T is the row with the greatest (src_rank, effective_at, event_id) before T.
CREATE TABLE subscription_history (
    subscription_id       TEXT NOT NULL,
    event_id              TEXT NOT NULL,
    effective_at          BIGINT NOT NULL,
    src_rank              BIGINT NOT NULL,
    customer              TEXT,
    status                TEXT NOT NULL,
    currency              TEXT,
    base_mrr              DOUBLE PRECISION NOT NULL,
    collection_paused     INTEGER NOT NULL CHECK (collection_paused IN (0, 1)),
    pause_resumes_at      BIGINT,
    discounts             TEXT NOT NULL,
    cancel_at_period_end  INTEGER NOT NULL CHECK (cancel_at_period_end IN (0, 1)),
    cancel_reason         TEXT,
    cancel_feedback       TEXT,
    canceled_at           BIGINT,
    ended_at              BIGINT,
    items                 TEXT NOT NULL,
    PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX subscription_history_effective ON subscription_history (effective_at);
