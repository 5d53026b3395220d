-- `holdfast sync` resumes where it stopped: per Stripe object type, the id of the last object
-- whose snapshots are committed (the next page starts after it). A finished pass clears the
-- cursor, so the next run starts over (and finds only duplicates).
CREATE TABLE sync_cursors (
    object_type  TEXT PRIMARY KEY,
    last_id      TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
