-- name: lock-items
-- Writers of the same items take turns from their read to their commit; keys come sorted,
-- so two writers cannot deadlock.
SELECT pg_advisory_xact_lock($1::int, key) FROM unnest($2::int[]) AS key ORDER BY key

-- name: stored-items
SELECT id, fields, updated_at FROM catalog_items WHERE catalog = $1 AND id = ANY($2::text[])

-- name: put-items
INSERT INTO catalog_items (catalog, id, fields, updated_at)
SELECT $1, * FROM unnest($2::text[], $3::bytea[], $4::float8[])
ON CONFLICT (catalog, id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at

-- name: keep-events
INSERT INTO catalog_events (message_id, body)
SELECT message_id, body FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS e(message_id, body, n)
ORDER BY n
ON CONFLICT (message_id) DO NOTHING

-- name: get-item
SELECT fields, updated_at FROM catalog_items WHERE catalog = $1 AND id = $2

-- name: get-many
SELECT i.catalog, i.id, i.fields, i.updated_at
FROM catalog_items AS i
JOIN unnest($1::text[], $2::text[]) AS k(catalog, id) ON i.catalog = k.catalog AND i.id = k.id

-- name: delete-item
DELETE FROM catalog_items WHERE catalog = $1 AND id = $2

-- name: list-items
SELECT id, fields, updated_at FROM catalog_items WHERE catalog = $1 AND id > $2
ORDER BY id LIMIT $3

-- name: pending-events
SELECT body FROM catalog_events ORDER BY seq LIMIT $1

-- name: forget-events
DELETE FROM catalog_events WHERE message_id = ANY($1::text[])
