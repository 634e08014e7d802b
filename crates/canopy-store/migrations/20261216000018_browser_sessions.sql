-- Sessions of the web UI end after a while without use (IF2): until when a
-- session may stay unused, moved forward as it is used. NULL for sessions
-- that only end at expires_at (tokens from POST /api/v1/auth/token).
ALTER TABLE sessions ADD COLUMN idle_until BIGINT;
