-- The instance acts on the events of one Stripe mode; /metrics counts the others.
CREATE INDEX IF NOT EXISTS stripe_events_livemode ON stripe_events (livemode);
