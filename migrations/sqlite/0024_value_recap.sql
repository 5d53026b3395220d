-- Monthly value recap: product activity per event name, so each customer's recap can list
-- their month's usage by what they did.

-- The event names counted by name, first come first served, at most 50 (the cap is kept by
-- the writer): a name reported after the 50th is counted under 'other'.
CREATE TABLE activity_event_names (
    name        TEXT PRIMARY KEY NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Activity per customer per UTC day (unix seconds / 86400) per event name (a known name or
-- 'other'); items reported without an event name are counted in activity_daily only.
CREATE TABLE activity_daily_events (
    customer  TEXT NOT NULL,
    day       BIGINT NOT NULL,
    name      TEXT NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (customer, day, name)
);
