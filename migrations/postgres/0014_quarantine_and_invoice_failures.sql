-- Events the projector refused to project (see the README, "Quarantined events"): the log row
-- stays, marked with the reason; it is never projected, parked or retried.
ALTER TABLE stripe_events ADD COLUMN quarantine TEXT;
CREATE INDEX stripe_events_quarantined ON stripe_events (seq) WHERE quarantine IS NOT NULL;

-- The first failure of each invoice, kept by the projector, so that the reports read a
-- projected column instead of parsing event payloads in SQL.
CREATE TABLE invoice_failures (
    invoice_id       TEXT PRIMARY KEY NOT NULL,
    first_failed_at  BIGINT NOT NULL
);

-- Filled from the events already in the log. A payload Postgres can't parse (too deep: "stack
-- depth limit exceeded"; not JSON) is passed over here instead of failing the upgrade, and ids
-- of absurd length are left out of the index.
CREATE FUNCTION holdfast_0014_object_id(payload TEXT) RETURNS TEXT LANGUAGE plpgsql AS $$
BEGIN
    RETURN payload::json -> 'data' -> 'object' ->> 'id';
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;

INSERT INTO invoice_failures (invoice_id, first_failed_at)
SELECT invoice_id, MIN(created) FROM (
    SELECT holdfast_0014_object_id(payload) AS invoice_id, created
    FROM stripe_events WHERE type IN ('invoice.payment_failed', 'invoice.payment_action_required')
) f WHERE invoice_id IS NOT NULL AND length(invoice_id) <= 255
GROUP BY invoice_id;

DROP FUNCTION holdfast_0014_object_id(TEXT);
