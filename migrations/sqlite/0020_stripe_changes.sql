-- Every change Holdfast itself made in Stripe, for the owner's customer page: the exact
-- request (method, path, form parameters as sent) and who caused it. Written in the same
-- transaction as the cancel session's outcome, only after Stripe accepted the change.
CREATE TABLE stripe_changes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    customer         TEXT NOT NULL,
    subscription     TEXT,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    params           TEXT NOT NULL,
    purpose          TEXT NOT NULL,
    triggered_by     TEXT NOT NULL,
    idempotency_key  TEXT,
    made_at          BIGINT NOT NULL
);
CREATE INDEX stripe_changes_customer ON stripe_changes (customer, made_at);
