-- name: schema
CREATE TABLE IF NOT EXISTS events (
    "offset"    INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL,
    contact_key TEXT NOT NULL,
    type        TEXT NOT NULL,
    received_at REAL NOT NULL,
    body        BLOB NOT NULL,
    send_key    TEXT  -- of a lifecycle event: its send's idempotency key (see send-key-index)
);
CREATE INDEX IF NOT EXISTS events_by_contact ON events (contact_key, "offset");
CREATE TABLE IF NOT EXISTS seen_message_ids (
    message_id  TEXT PRIMARY KEY,
    received_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_time ON seen_message_ids (received_at);

-- name: add-send-key
-- A log file from before the column.
ALTER TABLE events ADD COLUMN send_key TEXT

-- name: send-key-index
-- One message's events, for its timeline; only lifecycle events have a key.
CREATE INDEX IF NOT EXISTS events_by_send ON events (send_key, "offset")
WHERE send_key IS NOT NULL

-- name: for-send
SELECT "offset", body FROM events WHERE send_key = ? ORDER BY "offset" LIMIT ?

-- name: remember-message-id
INSERT INTO seen_message_ids (message_id, received_at) VALUES (?, ?)

-- name: insert-event
INSERT INTO events ("offset", message_id, contact_key, type, received_at, body, send_key)
VALUES (?, ?, ?, ?, ?, ?, ?)

-- name: read-after
SELECT "offset", body FROM events WHERE "offset" > ? ORDER BY "offset" LIMIT ?

-- name: head
SELECT COALESCE(MAX("offset"), 0) FROM events

-- name: forget-message-ids
DELETE FROM seen_message_ids WHERE received_at < ?

-- name: oldest
SELECT "offset", received_at FROM events WHERE "offset" <= ? ORDER BY "offset" LIMIT ?

-- name: forget-through
DELETE FROM events WHERE "offset" <= ?

-- name: rewrite-body
UPDATE events SET body = ? WHERE "offset" = ?
