-- A counter bumped by every ingest transaction that stored new events: the metrics cache
-- (src/reports.rs) is valid while the generation it was computed at is still current, on
-- every replica.
CREATE TABLE history_generation (
    id          BIGINT PRIMARY KEY NOT NULL CHECK (id = 1),
    generation  BIGINT NOT NULL
);
INSERT INTO history_generation (id, generation) VALUES (1, 0);
