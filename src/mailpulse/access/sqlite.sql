-- name: schema
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    digest     BLOB NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    scope      TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at REAL NOT NULL,
    revoked_at REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    actor   TEXT NOT NULL,
    key_id  TEXT NOT NULL,
    scope   TEXT NOT NULL,
    method  TEXT NOT NULL,
    path    TEXT NOT NULL,
    target  TEXT NOT NULL,
    summary TEXT NOT NULL,
    status  INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    ip      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit_log (at);

-- name: add-key
INSERT INTO api_keys (id, digest, prefix, scope, name, created_at, revoked_at)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: revoke-key
UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL

-- name: key-columns
SELECT id, digest, prefix, scope, name, created_at, revoked_at FROM api_keys

-- name: keys-version
SELECT COUNT(*) + COUNT(revoked_at) FROM api_keys

-- name: record
INSERT INTO audit_log (at, actor, key_id, scope, method, path, target, summary, status, outcome, ip)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
RETURNING id

-- name: audit
SELECT id, at, actor, key_id, scope, method, path, target, summary, status, outcome, ip
FROM audit_log
WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2) AND (?3 IS NULL OR id < ?3)
ORDER BY id DESC LIMIT ?4
