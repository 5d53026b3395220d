-- One row per cancel-flow session (issue 4). A session starts when the customer opens a
-- signed link, or is minted by the owner (POST /api/cancel-sessions) and starts when its
-- one-time link is first opened. The outcome is written only after Stripe accepted the change.
CREATE TABLE cancel_sessions (
    id               TEXT PRIMARY KEY NOT NULL,  -- random; the capability in /cancel/s/{id}
    link_token_hash  TEXT UNIQUE,                -- sha256 hex of a minted one-time token
    csrf_token       TEXT NOT NULL,
    customer         TEXT NOT NULL,
    subscription     TEXT,
    return_url       TEXT,
    source           TEXT NOT NULL,              -- 'signed_link' | 'minted'
    created_at       BIGINT NOT NULL,
    link_expires_at  BIGINT NOT NULL,
    started_at       BIGINT,                     -- first opened; NULL while a minted link is unused
    deadline_at      BIGINT,                     -- unfinished after this = abandoned
    reason           TEXT,                       -- survey reason (our vocabulary)
    feedback         TEXT,                       -- Stripe cancellation_details.feedback
    comment          TEXT,
    reason_at        BIGINT,
    offers_shown     TEXT NOT NULL DEFAULT '[]', -- JSON array of offer kinds
    acting_until     BIGINT,                     -- lease while a Stripe call is in flight
    attempts         BIGINT NOT NULL DEFAULT 0,
    outcome          TEXT,                       -- paused|downgraded|discounted|canceled|abandoned
    outcome_detail   TEXT,                       -- JSON: months, resumes_at, prices, coupon
    paused_until     BIGINT,
    completed_at     BIGINT
);
CREATE INDEX cancel_sessions_customer ON cancel_sessions (customer, completed_at);
CREATE INDEX cancel_sessions_started ON cancel_sessions (started_at);
