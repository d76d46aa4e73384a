-- name: get-checkpoint
SELECT "offset" FROM checkpoints WHERE partition = $1

-- name: set-checkpoint
INSERT INTO checkpoints (partition, "offset") VALUES ($1, $2)
ON CONFLICT (partition) DO UPDATE SET "offset" = excluded."offset"

-- name: upsert-contact
INSERT INTO contacts (id, body) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET body = excluded.body

-- name: delete-contact
DELETE FROM contacts WHERE id = $1

-- name: get-contact
SELECT body FROM contacts WHERE id = $1

-- name: upsert-identity
INSERT INTO identities (key, contact_id) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET contact_id = excluded.contact_id

-- name: merge-identities
UPDATE identities SET contact_id = $1 WHERE contact_id = $2

-- name: merge-instances
-- The merging fold folds the survivor from now on, so it fires the moved instances' timers.
UPDATE journey_instances SET contact_id = $1, partition = $3 WHERE contact_id = $2

-- name: hand-over-instances
UPDATE journey_instances SET partition = $2 WHERE contact_id = $1

-- name: resolve
SELECT key, contact_id FROM identities WHERE key = ANY($1::text[])

-- name: identities-of
SELECT key FROM identities WHERE contact_id = $1 ORDER BY key

-- name: upsert-instance
INSERT INTO journey_instances
    (instance_id, partition, contact_id, journey_id, status, wake_at, entered_at, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (instance_id) DO UPDATE SET
    partition = excluded.partition, contact_id = excluded.contact_id, status = excluded.status,
    wake_at = excluded.wake_at, body = excluded.body

-- name: instances-for
SELECT instance_id, contact_id, journey_id, status, wake_at, entered_at, body
FROM journey_instances WHERE contact_id = $1 ORDER BY entered_at, instance_id

-- name: contacts-in
SELECT id, body FROM contacts WHERE id = ANY($1::text[])

-- name: instances-in
SELECT instance_id, contact_id, journey_id, status, wake_at, entered_at, body
FROM journey_instances WHERE contact_id = ANY($1::text[])

-- name: due-instances
-- A paused journey's timers wait for its resume.
SELECT instance_id, contact_id, journey_id, status, wake_at, entered_at, body
FROM journey_instances
WHERE partition = $1 AND status = 'active' AND wake_at IS NOT NULL AND wake_at <= $2
    AND journey_id NOT IN (SELECT journey_id FROM journey_controls WHERE status = 'paused')
ORDER BY wake_at LIMIT $3

-- name: next-wake
SELECT min(wake) FROM (
    SELECT min(wake_at) AS wake FROM journey_instances
    WHERE partition = $1 AND status = 'active' AND wake_at IS NOT NULL
        AND journey_id NOT IN (SELECT journey_id FROM journey_controls WHERE status = 'paused')
    UNION ALL
    SELECT min(wake_at) FROM segment_timers WHERE partition = $1
) AS wakes

-- name: set-segment-timer
INSERT INTO segment_timers (contact_id, partition, wake_at) VALUES ($1, $2, $3)
ON CONFLICT (contact_id) DO UPDATE SET partition = excluded.partition, wake_at = excluded.wake_at

-- name: drop-segment-timer
DELETE FROM segment_timers WHERE contact_id = $1

-- name: due-segment-timers
SELECT contact_id FROM segment_timers WHERE partition = $1 AND wake_at <= $2
ORDER BY wake_at LIMIT $3

-- name: insert-outbox
-- Returns the keys that are new: a re-fold inserts nothing twice.
INSERT INTO outbox
    (key, partition, contact_id, status, attempts, next_attempt_at, message_id, last_code,
     last_text, created_at, updated_at, intent, address)
SELECT * FROM unnest(
    $1::text[], $2::int[], $3::text[], $4::text[], $5::int[], $6::float8[], $7::text[],
    $8::int[], $9::text[], $10::float8[], $11::float8[], $12::bytea[], $13::text[]
)
ON CONFLICT (key) DO NOTHING
RETURNING key

-- name: outbox-due
-- The literal IN matches the partial index on waiting rows; $2 narrows it to one status.
SELECT intent, status, attempts, next_attempt_at, message_id, last_code, last_text, updated_at
FROM outbox
WHERE partition = $1 AND status IN ('queued', 'deferred') AND status = ANY($2::text[])
    AND next_attempt_at <= $3
ORDER BY next_attempt_at LIMIT $4

-- name: outbox-queued
SELECT key FROM outbox WHERE status = 'queued' AND key = ANY($1::text[])

-- name: outbox-get
SELECT intent, status, attempts, next_attempt_at, message_id, last_code, last_text, updated_at
FROM outbox WHERE key = $1

-- name: outbox-by-message-id
SELECT intent, status, attempts, next_attempt_at, message_id, last_code, last_text, updated_at
FROM outbox WHERE message_id = $1 AND message_id <> ''

-- name: outbox-for-contact
SELECT intent, status, attempts, next_attempt_at, message_id, last_code, last_text, updated_at
FROM outbox WHERE contact_id = ANY($1::text[]) ORDER BY created_at DESC LIMIT $2

-- name: outbox-for-address
SELECT intent, status, attempts, next_attempt_at, message_id, last_code, last_text, updated_at
FROM outbox WHERE address = $1 ORDER BY created_at DESC LIMIT $2

-- name: update-outbox
UPDATE outbox SET status = $1, attempts = $2, next_attempt_at = $3, message_id = $4,
    last_code = $5, last_text = $6, updated_at = $7
WHERE key = $8

-- name: outbox-counts
SELECT status, count(*) FROM outbox GROUP BY status

-- name: save-journey-version
INSERT INTO journey_versions (journey_id, version, body) VALUES ($1, $2, $3)
ON CONFLICT (journey_id, version) DO NOTHING

-- name: journey-versions
SELECT journey_id, version, body FROM journey_versions

-- name: keep-lifecycle
INSERT INTO unshipped_lifecycle (message_id, partition, body) VALUES ($1, $2, $3)
ON CONFLICT (message_id) DO NOTHING

-- name: unshipped-lifecycle
SELECT body FROM unshipped_lifecycle WHERE partition = $1 ORDER BY seq LIMIT $2

-- name: forget-lifecycle
DELETE FROM unshipped_lifecycle WHERE message_id = ANY($1::text[])

-- name: reserve-turns
-- $2 seconds of destination $1's timeline, from its end or from now, whichever is later;
-- returns where they start and the clock they were taken at. One clock for every worker: the
-- database's. clock_timestamp(), not now(): SET is evaluated after the row lock is taken, so
-- time spent waiting for another worker's reservation does not date this one back.
INSERT INTO shaping_timelines AS t (destination, tat)
VALUES ($1, extract(epoch FROM clock_timestamp())::float8 + $2::float8)
ON CONFLICT (destination) DO UPDATE
    SET tat = GREATEST(t.tat, extract(epoch FROM clock_timestamp())::float8) + $2::float8
RETURNING t.tat - $2::float8, extract(epoch FROM clock_timestamp())::float8

-- name: note-interest
INSERT INTO object_interest (object, contact_id, last_at) VALUES ($1, $2, $3)
ON CONFLICT (object, contact_id)
DO UPDATE SET last_at = greatest(object_interest.last_at, excluded.last_at)

-- name: merge-interest
INSERT INTO object_interest (object, contact_id, last_at)
SELECT object, $1, last_at FROM object_interest WHERE contact_id = $2
ON CONFLICT (object, contact_id)
DO UPDATE SET last_at = greatest(object_interest.last_at, excluded.last_at)

-- name: drop-interest
DELETE FROM object_interest WHERE contact_id = $1

-- name: interested
SELECT contact_id FROM object_interest WHERE object = $1 AND last_at >= $2 ORDER BY contact_id

-- name: set-journey-control
INSERT INTO journey_controls (journey_id, status, changed_at) VALUES ($1, $2, $3)
ON CONFLICT (journey_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at

-- name: journey-controls
SELECT journey_id, status FROM journey_controls

-- name: add-journey-count
INSERT INTO journey_counts (journey_id, version, name, count) VALUES ($1, $2, $3, $4)
ON CONFLICT (journey_id, version, name)
DO UPDATE SET count = journey_counts.count + excluded.count

-- name: journey-counts
SELECT version, name, count FROM journey_counts WHERE journey_id = $1 ORDER BY version, name

-- name: active-instance-counts
SELECT journey_id, count(*) FROM journey_instances WHERE status = 'active' GROUP BY journey_id

-- name: set-segment-set
INSERT INTO segment_sets (partition, fingerprint) VALUES ($1, $2)
ON CONFLICT (partition) DO UPDATE SET fingerprint = excluded.fingerprint

-- name: segment-set
SELECT fingerprint FROM segment_sets WHERE partition = $1

-- name: contacts-after
SELECT body FROM contacts WHERE id > $1 ORDER BY id LIMIT $2

-- name: identities-after
SELECT key, contact_id FROM identities WHERE key > $1 ORDER BY key LIMIT $2

-- name: add-segment-members
INSERT INTO segment_members (partition, segment, count) VALUES ($1, $2, $3)
ON CONFLICT (partition, segment) DO UPDATE SET count = segment_members.count + excluded.count

-- name: clear-segment-members
DELETE FROM segment_members WHERE partition = $1

-- name: segment-members
SELECT segment, sum(count)::bigint FROM segment_members GROUP BY segment

-- name: create-campaign
INSERT INTO campaigns (id, status, body, updated_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO NOTHING

-- name: campaigns
SELECT id, status, cursor, appended, body, updated_at, phase, decide_at, decision
FROM campaigns LEFT JOIN campaign_tests ON campaign_id = id ORDER BY id

-- name: running-campaigns
-- A testing one too: the runner decides its test when the time comes.
SELECT id, status, cursor, appended, body, updated_at, phase, decide_at, decision
FROM campaigns LEFT JOIN campaign_tests ON campaign_id = id
WHERE status IN ('scheduled', 'sending', 'testing') ORDER BY id

-- name: campaign
SELECT id, status, cursor, appended, body, updated_at, phase, decide_at, decision
FROM campaigns LEFT JOIN campaign_tests ON campaign_id = id WHERE id = $1

-- name: move-campaign-on
UPDATE campaigns SET status = $1, cursor = $2, updated_at = $3
WHERE id = $4 AND status = $5 AND updated_at = $6

-- name: set-campaign-test
INSERT INTO campaign_tests (campaign_id, phase, decide_at, decision) VALUES ($1, $2, $3, $4)
ON CONFLICT (campaign_id) DO UPDATE
SET phase = excluded.phase, decide_at = excluded.decide_at, decision = excluded.decision

-- name: add-variant-count
INSERT INTO variant_counts (campaign_id, variant, figure, count) VALUES ($1, $2, $3, $4)
ON CONFLICT (campaign_id, variant, figure)
DO UPDATE SET count = variant_counts.count + excluded.count

-- name: variant-counts
SELECT variant, figure, count FROM variant_counts WHERE campaign_id = $1

-- name: add-engagement
INSERT INTO engagement_counts (owner, figure, count, amount) VALUES ($1, $2, $3, $4)
ON CONFLICT (owner, figure) DO UPDATE
SET count = engagement_counts.count + excluded.count,
    amount = engagement_counts.amount + excluded.amount

-- name: engagement
SELECT figure, count, amount FROM engagement_counts WHERE owner = $1

-- name: advance-campaign
-- Only while it runs: a pause or cancel that came meanwhile stands.
UPDATE campaigns SET cursor = $1, appended = appended + $2, status = $3, updated_at = $4
WHERE id = $5 AND status IN ('scheduled', 'sending')

-- name: set-campaign-status
UPDATE campaigns SET status = $1, updated_at = $2 WHERE id = $3

-- name: outbox-counts-between
SELECT status, count(*) FROM outbox WHERE key >= $1 AND key < $2 GROUP BY status

-- name: queued-count
SELECT count(*) FROM outbox WHERE status = 'queued'

-- name: take-quota
-- One more send in window $1 unless $2 are counted already; no row when they are. The row
-- lock orders workers taking from one window at once.
INSERT INTO send_quotas AS q (name, used, ends_at) VALUES ($1, 1, $3)
ON CONFLICT (name) DO UPDATE SET used = q.used + 1 WHERE q.used < $2
RETURNING q.used

-- name: return-quota
UPDATE send_quotas SET used = used - 1 WHERE name = $1 AND used > 0

-- name: forget-quotas
DELETE FROM send_quotas WHERE ends_at < $1

-- name: quota-used
SELECT name, used FROM send_quotas WHERE name = ANY($1::text[])

-- name: lock-addresses
-- Entries of one address are added one transaction at a time: an erasure and a topic's entry
-- added at once must not leave the erased address behind in the topic's row. In hash order,
-- so that two transactions never wait for each other.
SELECT pg_advisory_xact_lock(hashtextextended(h, 0))
FROM (SELECT h FROM unnest($1::text[]) AS h ORDER BY h) AS sorted

-- name: forget-erased-addresses
-- An erasure: the address's other entries go (the erased one blocks everything they did).
DELETE FROM suppressions WHERE address_hash = ANY($1::text[]) AND topic <> ''

-- name: add-rollup
INSERT INTO lifecycle_rollup AS r
    (hour, campaign, journey, template, figure, partition, count, amount)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (hour, campaign, journey, template, figure, partition) DO UPDATE
SET count = r.count + excluded.count, amount = r.amount + excluded.amount

-- name: rollup
-- $1, $2: the hours from and up to; $3: the step in seconds (0: the whole range).
SELECT '', CASE WHEN $3::bigint > 0 THEN hour - hour % $3::bigint ELSE 0 END AS start, figure,
    sum(count)::bigint, sum(amount)
FROM lifecycle_rollup WHERE hour >= $1 AND hour < $2
GROUP BY start, figure

-- name: rollup-by
-- {column}: one of ROLLUP_DIMENSIONS (mailpulse.store.interface), never anything else.
SELECT {column}, CASE WHEN $3::bigint > 0 THEN hour - hour % $3::bigint ELSE 0 END AS start, figure,
    sum(count)::bigint, sum(amount)
FROM lifecycle_rollup WHERE hour >= $1 AND hour < $2 AND {column} <> ''
GROUP BY {column}, start, figure

-- name: rollup-of
-- As rollup-by, of one value ($4) of {column}: through its index (partial: of rows
-- that have one).
SELECT {column}, CASE WHEN $3::bigint > 0 THEN hour - hour % $3::bigint ELSE 0 END AS start, figure,
    sum(count)::bigint, sum(amount)
FROM lifecycle_rollup WHERE {column} = $4 AND {column} <> '' AND hour >= $1 AND hour < $2
GROUP BY {column}, start, figure

-- name: add-complaint-counts
INSERT INTO complaint_counts AS c (bucket, partition, sends, complaints) VALUES ($1, $2, $3, $4)
ON CONFLICT (bucket, partition) DO UPDATE
SET sends = c.sends + excluded.sends, complaints = c.complaints + excluded.complaints

-- name: complaint-counts
SELECT COALESCE(sum(sends), 0)::bigint, COALESCE(sum(complaints), 0)::bigint
FROM complaint_counts WHERE bucket >= $1

-- name: forget-complaint-counts
DELETE FROM complaint_counts WHERE bucket < $1

-- name: breaker
SELECT alert_at, tripped_at, reason, sends, complaints, since, resumed_at, resumed_by,
    judged_from, baseline_sends, baseline_complaints
FROM breaker

-- name: breaker-tripped-at
-- Shared: a resume (which updates the row) waits for the hold that read it, and a hold waits
-- for a resume under way, then reads the row as the resume left it.
SELECT tripped_at FROM breaker FOR SHARE

-- name: raise-complaint-alert
UPDATE breaker SET alert_at = $1 WHERE alert_at IS NULL

-- name: resolve-complaint-alert
UPDATE breaker SET alert_at = NULL WHERE alert_at IS NOT NULL

-- name: trip-breaker
UPDATE breaker SET tripped_at = $1, reason = $2, sends = $3, complaints = $4, since = $5
WHERE tripped_at IS NULL AND judged_from = $6

-- name: resume-breaker
-- $3: the bucket the resume falls in, whose counts so far are not judged again.
UPDATE breaker SET tripped_at = NULL, resumed_at = $1, resumed_by = $2, judged_from = $1,
    baseline_sends = (SELECT COALESCE(sum(sends), 0) FROM complaint_counts WHERE bucket = $3),
    baseline_complaints =
        (SELECT COALESCE(sum(complaints), 0) FROM complaint_counts WHERE bucket = $3)
WHERE tripped_at IS NOT NULL

-- name: hold-for-breaker
UPDATE outbox SET status = 'deferred', next_attempt_at = $1, last_code = 0, last_text = 'breaker',
    updated_at = $2
WHERE key = ANY($3::text[]) AND status IN ('queued', 'deferred')

-- name: release-held
UPDATE outbox SET next_attempt_at = $1, updated_at = $1
WHERE status IN ('queued', 'deferred') AND status = 'deferred' AND next_attempt_at >= $2

-- name: add-suppressions
-- Unless the address is erased (its erased entry is all that is kept of it); over an entry of
-- the same address and topic only when stronger. RETURNING the rows that took effect.
INSERT INTO suppressions AS s
    (address_hash, topic, address, reason, strength, detail, source, created_at)
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::text[], $7::text[],
    $8::float8[]
) AS u (address_hash, topic, address, reason, strength, detail, source, created_at)
WHERE u.reason = 'erased' OR NOT EXISTS (
    SELECT 1 FROM suppressions e WHERE e.address_hash = u.address_hash AND e.reason = 'erased'
)
ON CONFLICT (address_hash, topic) DO UPDATE SET
    address = excluded.address, reason = excluded.reason, strength = excluded.strength,
    detail = excluded.detail, source = excluded.source, created_at = excluded.created_at
WHERE excluded.strength > s.strength
RETURNING address_hash, topic

-- name: suppressions-for
SELECT address_hash, topic, address, reason, detail, source, created_at FROM suppressions
WHERE address_hash = ANY($1::text[])

-- name: suppressions-after
SELECT address_hash, topic, address, reason, detail, source, created_at FROM suppressions
WHERE (address_hash, topic) > ($1, $2)
    AND ($3::text IS NULL OR reason = $3) AND ($4::text IS NULL OR topic = $4)
ORDER BY address_hash, topic LIMIT $5

-- name: remove-suppression
DELETE FROM suppressions WHERE address_hash = $1 AND topic = $2 AND reason <> 'erased'

-- name: lift-unsubscribe
-- A resubscribe: the unsubscribe entry of the address and topic, and no entry of another reason.
DELETE FROM suppressions WHERE address_hash = $1 AND topic = $2 AND reason = 'unsubscribe'

-- name: add-consent
INSERT INTO consents (id, contact_id, address, topic, action, source, ip, user_agent, wording, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (id) DO NOTHING

-- name: merge-consents
UPDATE consents SET contact_id = $1 WHERE contact_id = $2

-- name: consents-of
-- The latest `limit` ($2) of a contact's records; the caller puts them oldest first.
SELECT id, contact_id, address, topic, action, source, ip, user_agent, wording, at FROM consents
WHERE contact_id = $1 ORDER BY at DESC, id DESC LIMIT $2

-- name: add-soft-bounce
INSERT INTO soft_bounces (address_hash, event_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING

-- name: forget-soft-bounces
DELETE FROM soft_bounces WHERE address_hash = $1 AND at < $2

-- name: soft-bounces-since
SELECT address_hash, at FROM soft_bounces WHERE address_hash = ANY($1::text[]) AND at >= $2

-- name: erased-ids
SELECT $1::text UNION SELECT key FROM identities WHERE contact_id = $1

-- name: erased-outbox
SELECT key, status, intent FROM outbox WHERE contact_id = ANY($1::text[])

-- name: scrub-outbox-row
UPDATE outbox SET intent = $1, status = $2, last_text = $3, updated_at = $4, address = NULL
WHERE key = $5

-- name: erase-instances
DELETE FROM journey_instances WHERE contact_id = ANY($1::text[])

-- name: erase-interest
DELETE FROM object_interest WHERE contact_id = ANY($1::text[])

-- name: erase-segment-timers
DELETE FROM segment_timers WHERE contact_id = ANY($1::text[])

-- name: erase-consents
DELETE FROM consents WHERE contact_id = ANY($1::text[])

-- name: kept-lifecycle
SELECT message_id, body FROM unshipped_lifecycle

-- name: scrub-lifecycle
UPDATE unshipped_lifecycle SET body = $1 WHERE message_id = $2
