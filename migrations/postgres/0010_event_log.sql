-- The event log comes first: a webhook is acknowledged once its event is in `stripe_events`,
-- and a projector applies the log to the projected tables behind it, in arrival order.
-- Postgres: the log's order is `seq`; appends take a transaction-level advisory lock, so
-- rows become visible in `seq` order (a reader never sees seq 11 before seq 10 commits).
ALTER TABLE stripe_events ADD COLUMN seq BIGSERIAL;
CREATE UNIQUE INDEX stripe_events_seq ON stripe_events (seq);

-- Imported history (sync, replay) is stored with notify = false: its reactions never email.
ALTER TABLE stripe_events ADD COLUMN notify BOOLEAN NOT NULL DEFAULT TRUE;

-- How far the projector got: every event at or below `position` is projected (or parked).
-- A database upgraded in place was projected by the ingest transaction: start past it.
CREATE TABLE projector_cursor (
    id        BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    position  BIGINT NOT NULL
);
INSERT INTO projector_cursor (id, position) SELECT 1, COALESCE(MAX(seq), 0) FROM stripe_events;

-- Events not projected: the first one of a customer failed (`error` set), the later ones of
-- that customer wait behind it (`error` NULL), in log order. Retried with back-off.
CREATE TABLE parked_events (
    seq              BIGINT PRIMARY KEY NOT NULL,
    event_id         TEXT NOT NULL,
    customer_key     TEXT NOT NULL,
    error            TEXT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    parked_at        BIGINT NOT NULL
);
CREATE INDEX parked_events_customer ON parked_events (customer_key, seq);
