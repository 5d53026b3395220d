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

-- A low NPS score from a paying customer opens an at-risk episode too.
ALTER TABLE at_risk DROP CONSTRAINT at_risk_reason_check;
ALTER TABLE at_risk ADD CONSTRAINT at_risk_reason_check CHECK (reason IN ('inactive', 'activity_drop', 'low_nps'));
