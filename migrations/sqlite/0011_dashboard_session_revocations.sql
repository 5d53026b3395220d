-- Dashboard sessions ended by logging out. The cookie is a signed value that stays valid until
-- it expires, so logging out records it (as its SHA-256: the value itself is a credential)
-- until that time; a recorded session is refused. Rows past `expires_at` are deleted.
CREATE TABLE dashboard_session_revocations (
    session_hash  TEXT PRIMARY KEY,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX dashboard_session_revocations_expires ON dashboard_session_revocations (expires_at);
