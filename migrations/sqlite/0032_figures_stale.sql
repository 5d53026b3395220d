-- Customers whose maintained figures are behind their projected history. While the projector
-- works through a backlog it marks the customers a pass touches here instead of recomputing
-- them at once; a pass that reaches the end of the log, or finds a mark older than a few
-- seconds, recomputes the marked ones (oldest first) and removes their marks, in its own
-- transaction. A customer with several events in a backlog is recomputed once, not once per pass.
CREATE TABLE metric_stale (
    customer   TEXT PRIMARY KEY,
    marked_at  BIGINT NOT NULL
);
CREATE INDEX metric_stale_marked_at ON metric_stale (marked_at);

-- A subscription's open dunning case, found without reading its closed ones (a customer who
-- failed to pay every month for years has many).
CREATE INDEX dunning_cases_open_subscription ON dunning_cases (subscription) WHERE status = 'open';
