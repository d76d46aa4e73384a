-- name: schema
CREATE TABLE IF NOT EXISTS catalog_items (
    catalog    TEXT NOT NULL,
    id         TEXT NOT NULL,
    fields     BLOB NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (catalog, id)
) WITHOUT ROWID;
-- Derived events not yet known to be in the log, in the order they were derived.
CREATE TABLE IF NOT EXISTS catalog_events (
    message_id TEXT PRIMARY KEY,
    body       BLOB NOT NULL
);

-- name: get-item
SELECT fields, updated_at FROM catalog_items WHERE catalog = ? AND id = ?

-- name: put-item
INSERT INTO catalog_items (catalog, id, fields, updated_at) VALUES (?, ?, ?, ?)
ON CONFLICT (catalog, id) DO UPDATE SET fields = excluded.fields, updated_at = excluded.updated_at

-- name: delete-item
DELETE FROM catalog_items WHERE catalog = ? AND id = ?

-- name: list-items
SELECT id, fields, updated_at FROM catalog_items WHERE catalog = ? AND id > ?
ORDER BY id LIMIT ?

-- name: keep-event
INSERT OR IGNORE INTO catalog_events (message_id, body) VALUES (?, ?)

-- name: pending-events
SELECT body FROM catalog_events ORDER BY rowid LIMIT ?

-- name: forget-event
DELETE FROM catalog_events WHERE message_id = ?
