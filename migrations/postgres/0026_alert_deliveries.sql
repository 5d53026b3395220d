-- Alerts to the owner's Slack and signed webhook: an outbox of their own (the email outbox's
-- rows are emails). One row per alert and destination: dedupe_key is "alert:<alert id>:<destination>",
-- so an alert decided twice (a redelivered event, two replicas) is delivered once. The
-- destination's URL is not stored (it is a secret; it is read from the settings when sending).
CREATE TABLE alert_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    dedupe_key       TEXT NOT NULL UNIQUE,
    alert_id         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    destination      TEXT NOT NULL CHECK (destination IN ('slack', 'webhook')),
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    claimed_until    BIGINT,
    claim_token      TEXT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (status, next_attempt_at);
