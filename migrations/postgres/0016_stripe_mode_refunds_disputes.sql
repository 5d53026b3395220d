-- The instance acts on the events of one Stripe mode; /metrics counts the others.
CREATE INDEX IF NOT EXISTS stripe_events_livemode ON stripe_events (livemode);

-- Money given back after a payment (refunds, disputes, credit notes) and the payments that
-- tie a charge to its invoice. Projected from the log like every other table; a row is
-- replaced only by a snapshot from a later event (`src_created`).
CREATE TABLE charges (
    id              TEXT PRIMARY KEY NOT NULL,
    customer        TEXT,
    invoice         TEXT,
    payment_intent  TEXT,
    currency        TEXT,
    amount_refunded BIGINT NOT NULL,
    src_created     BIGINT NOT NULL
);

-- Each event's view of a charge's cumulative refunds: a refund is dated by the event that
-- first reported it, whatever order the events arrive in.
CREATE TABLE charge_refund_marks (
    event_id        TEXT PRIMARY KEY NOT NULL,
    charge          TEXT NOT NULL,
    amount_refunded BIGINT NOT NULL,
    at              BIGINT NOT NULL
);
CREATE INDEX charge_refund_marks_charge ON charge_refund_marks (charge);

CREATE TABLE disputes (
    id              TEXT PRIMARY KEY NOT NULL,
    charge          TEXT,
    payment_intent  TEXT,
    currency        TEXT,
    amount          BIGINT NOT NULL,
    status          TEXT NOT NULL,
    created         BIGINT NOT NULL,
    decided_at      BIGINT,
    src_created     BIGINT NOT NULL
);

CREATE TABLE credit_notes (
    id              TEXT PRIMARY KEY NOT NULL,
    invoice         TEXT,
    customer        TEXT,
    currency        TEXT,
    credited        BIGINT NOT NULL,
    voided          BOOLEAN NOT NULL,
    created         BIGINT NOT NULL,
    src_created     BIGINT NOT NULL
);

CREATE TABLE invoice_payment_intents (
    payment_intent  TEXT PRIMARY KEY NOT NULL,
    invoice         TEXT NOT NULL
);
