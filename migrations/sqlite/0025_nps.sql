-- NPS: one answer per survey email (a survey is keyed nps:<customer>:w<wave>), stored once
-- however often its link is opened or its form posted; the comment is optional and later.
CREATE TABLE nps_answers (
    survey       TEXT PRIMARY KEY NOT NULL,
    customer     TEXT NOT NULL,
    score        BIGINT NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment      TEXT,
    paying       BIGINT NOT NULL CHECK (paying IN (0, 1)),
    answered_at  BIGINT NOT NULL,
    commented_at BIGINT
);
CREATE INDEX nps_answers_answered ON nps_answers (answered_at);
CREATE INDEX nps_answers_customer ON nps_answers (customer, answered_at);

-- A low NPS score from a paying customer opens an at-risk episode too: the reason's CHECK
-- gains 'low_nps'. SQLite cannot alter a CHECK, so the table is rebuilt with the same rows.
CREATE TABLE at_risk_new (
    customer          TEXT PRIMARY KEY NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('at_risk', 'reengaged', 'ended')),
    reason            TEXT NOT NULL CHECK (reason IN ('inactive', 'activity_drop', 'low_nps')),
    since             BIGINT NOT NULL,
    last_activity_at  BIGINT,
    recent_week       BIGINT NOT NULL,
    baseline_week     BIGINT NOT NULL,
    resolved_at       BIGINT
);
INSERT INTO at_risk_new (customer, status, reason, since, last_activity_at, recent_week, baseline_week, resolved_at)
    SELECT customer, status, reason, since, last_activity_at, recent_week, baseline_week, resolved_at FROM at_risk;
DROP TABLE at_risk;
ALTER TABLE at_risk_new RENAME TO at_risk;
CREATE INDEX at_risk_status ON at_risk (status, since);
