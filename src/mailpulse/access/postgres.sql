-- name: add-key
INSERT INTO api_keys (id, digest, prefix, scope, name, created_at, revoked_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)

-- name: revoke-key
UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL

-- name: get-key
SELECT id, digest, prefix, scope, name, created_at, revoked_at FROM api_keys WHERE id = $1

-- name: keys
SELECT id, digest, prefix, scope, name, created_at, revoked_at FROM api_keys
ORDER BY created_at, id

-- name: keys-version
SELECT count(*) + count(revoked_at) FROM api_keys

-- name: record
INSERT INTO audit_log (at, actor, key_id, scope, method, path, target, summary, status, outcome, ip)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id

-- name: audit
SELECT id, at, actor, key_id, scope, method, path, target, summary, status, outcome, ip
FROM audit_log
WHERE ($1::float8 IS NULL OR at >= $1) AND ($2::float8 IS NULL OR at < $2)
    AND ($3::bigint IS NULL OR id < $3)
ORDER BY id DESC LIMIT $4
