-- Objects to fetch again from Stripe because two snapshots of the same second differed and
-- the tie rule had to choose (only written when STRIPE_SECRET_KEY is set). One row per
-- object: a later tie in the same burst moves `due_at` on (the debounce). Written by the
-- projector's transaction; the refetcher deletes the row once Stripe's answer is in the log.
CREATE TABLE refetch_requests (
    object_id    TEXT PRIMARY KEY,
    object_type  TEXT NOT NULL,
    tied_created BIGINT NOT NULL,
    due_at       BIGINT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refetch_requests_due ON refetch_requests (due_at);
