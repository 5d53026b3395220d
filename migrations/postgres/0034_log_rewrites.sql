-- How many times payloads of the event log were rewritten (`holdfast forget`, payload
-- pruning), counted in the transaction that rewrites them: the projector's batch read ahead
-- of its cursor is used only if this has not moved since it was read.
CREATE TABLE log_rewrites (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    count BIGINT NOT NULL
);
INSERT INTO log_rewrites (id, count) VALUES (1, 0);
