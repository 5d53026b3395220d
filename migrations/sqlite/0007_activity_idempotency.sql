-- Idempotency keys of `POST /api/activity` batches: a batch retried with the same key is
-- answered from here and counted once. `fingerprint` (SHA-256 of the batch's per-customer
-- sums) tells a retry from a different batch sent under a reused key. Kept 7 days.
CREATE TABLE activity_batches (
    idempotency_key  TEXT PRIMARY KEY,
    fingerprint      TEXT NOT NULL,
    received_at      BIGINT NOT NULL,
    items            BIGINT NOT NULL,
    customers        BIGINT NOT NULL
);
CREATE INDEX activity_batches_received ON activity_batches (received_at);
