-- The newest failure's attempt_count: the final notice goes only before the owner's last
-- configured try (attempt_count = tries - 1), never on Stripe's next retry alone.
ALTER TABLE dunning_cases ADD COLUMN attempt_count BIGINT NOT NULL DEFAULT 0;

-- Observe-only mode (HOLDFAST_MODE=observe): every Stripe call that would have been made is
-- recorded here instead, for the owner to review. Emails stay in the outbox as 'observed'.
CREATE TABLE observed_stripe_calls (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    params       TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    customer     TEXT,
    observed_at  BIGINT NOT NULL
);
CREATE INDEX observed_stripe_calls_at ON observed_stripe_calls (observed_at);
