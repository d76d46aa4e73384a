-- name: claim-partition-count
INSERT INTO cluster (name, value) VALUES ('partitions', $1) ON CONFLICT (name) DO NOTHING

-- name: partition-count
SELECT value FROM cluster WHERE name = 'partitions'

-- name: create-partitions
INSERT INTO log_partitions (partition) SELECT generate_series(0, $1 - 1)
ON CONFLICT (partition) DO NOTHING

-- name: remember-message-ids
-- Returns the ids that were not seen yet. An id another transaction is inserting waits for
-- that transaction: whichever commits first has it.
INSERT INTO seen_message_ids (message_id, received_at)
SELECT * FROM unnest($1::text[], $2::float8[])
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id

-- name: lock-partitions
-- In ascending order (the lock is taken after the sort): writers never wait on each other in
-- a circle.
SELECT partition FROM log_partitions WHERE partition = ANY($1::int[])
ORDER BY partition FOR UPDATE

-- name: advance-heads
UPDATE log_partitions AS p SET head = p.head + n.count
FROM unnest($1::int[], $2::bigint[]) AS n (partition, count)
WHERE p.partition = n.partition
RETURNING p.partition, p.head

-- name: insert-events
INSERT INTO events (
    partition, "offset", message_id, contact_key, type, received_at, body, send_key
)
SELECT * FROM unnest(
    $1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::bytea[],
    $8::text[]
)

-- name: read-after
SELECT "offset", body FROM events
WHERE partition = $1 AND "offset" > $2 ORDER BY "offset" LIMIT $3

-- name: head
SELECT head FROM log_partitions WHERE partition = $1

-- name: for-contact
SELECT partition, "offset", body FROM events
WHERE contact_key = ANY($1::text[]) ORDER BY seq DESC LIMIT $2

-- name: for-send
SELECT partition, "offset", body FROM events WHERE send_key = $1 ORDER BY seq LIMIT $2

-- name: forget-message-ids
WITH forgotten AS (DELETE FROM seen_message_ids WHERE received_at < $1 RETURNING 1)
SELECT count(*) FROM forgotten

-- name: contact-bodies
SELECT partition, "offset", body FROM events WHERE contact_key = ANY($1::text[])

-- name: bodies-at
SELECT e.partition, e."offset", e.body
FROM events AS e JOIN unnest($1::int[], $2::bigint[]) AS p (partition, "offset")
    ON e.partition = p.partition AND e."offset" = p."offset"

-- name: rewrite-bodies
UPDATE events AS e SET body = n.body
FROM unnest($1::int[], $2::bigint[], $3::bytea[]) AS n (partition, "offset", body)
WHERE e.partition = n.partition AND e."offset" = n."offset"

-- name: oldest
SELECT "offset", received_at FROM events
WHERE partition = $1 AND "offset" <= $2 ORDER BY "offset" LIMIT $3

-- name: forget-through
DELETE FROM events WHERE partition = $1 AND "offset" <= $2
