-- Saves checked against billing. A session that ended in a save (paused, downgraded,
-- discounted, resumed) starts `pending`; the scheduler later decides `confirmed` (an invoice
-- paid after the offer's effect ended, or still paying N days later) or `reversed` (the
-- subscription ended or was set to cancel first). Decided rows never change again.
ALTER TABLE cancel_sessions ADD COLUMN save_state TEXT;          -- pending|confirmed|reversed; NULL: not a save
ALTER TABLE cancel_sessions ADD COLUMN save_decided_at BIGINT;   -- when the evidence happened
ALTER TABLE cancel_sessions ADD COLUMN save_evidence TEXT;       -- paid_invoice|still_paying|ended|set_to_cancel
ALTER TABLE cancel_sessions ADD COLUMN save_mrr DOUBLE PRECISION; -- the subscription's MRR when confirmed (minor units)
ALTER TABLE cancel_sessions ADD COLUMN save_currency TEXT;
UPDATE cancel_sessions SET save_state = 'pending' WHERE outcome IN ('paused', 'downgraded', 'discounted', 'resumed');
CREATE INDEX cancel_sessions_save_state ON cancel_sessions (save_state);

-- Clicks on the update-payment link of a dunning email (GET /billing/update), first per
-- invoice and email: recovery attribution reads whether the customer clicked before paying.
CREATE TABLE payment_link_clicks (
    invoice     TEXT NOT NULL,
    email_ref   TEXT NOT NULL,   -- the link's per-email token (hash of the email's dedupe key), '-' if none
    clicked_at  BIGINT NOT NULL,
    PRIMARY KEY (invoice, email_ref)
);
