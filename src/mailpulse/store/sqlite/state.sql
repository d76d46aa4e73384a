-- name: schema
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT PRIMARY KEY,
    "offset" INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contacts (
    id   TEXT PRIMARY KEY,
    body BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS identities (
    key        TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identities_by_contact ON identities (contact_id);
CREATE TABLE IF NOT EXISTS journey_instances (
    instance_id TEXT PRIMARY KEY,
    contact_id  TEXT NOT NULL,
    journey_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    wake_at     REAL,
    entered_at  REAL NOT NULL,
    body        BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS instances_by_contact ON journey_instances (contact_id);
CREATE INDEX IF NOT EXISTS instances_by_wake ON journey_instances (wake_at)
    WHERE status = 'active' AND wake_at IS NOT NULL;
-- When time alone may next change a contact's segment memberships (a window passing).
CREATE TABLE IF NOT EXISTS segment_timers (
    contact_id TEXT PRIMARY KEY,
    wake_at    REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segment_timers_by_wake ON segment_timers (wake_at);
-- The segment set the stored memberships were computed with (backfilled, then kept).
CREATE TABLE IF NOT EXISTS segment_sets (
    partition   INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL
) WITHOUT ROWID;
-- How many contacts are in each segment, per partition (a partition's count may go below
-- zero when a contact merges into another partition's: the sum is what counts).
CREATE TABLE IF NOT EXISTS segment_members (
    partition INTEGER NOT NULL,
    segment   TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (partition, segment)
) WITHOUT ROWID;
-- Who showed interest in which object, for the notifications an event about it fans out.
CREATE TABLE IF NOT EXISTS object_interest (
    object     TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    last_at    REAL NOT NULL,
    PRIMARY KEY (object, contact_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS object_interest_by_contact ON object_interest (contact_id);
-- Journeys paused or archived from the admin API (a journey not listed is live).
CREATE TABLE IF NOT EXISTS journey_controls (
    journey_id TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    changed_at REAL NOT NULL
) WITHOUT ROWID;
-- How many contacts entered, finished, left, took each split arm: per journey version.
CREATE TABLE IF NOT EXISTS journey_counts (
    journey_id TEXT NOT NULL,
    version    TEXT NOT NULL,
    name       TEXT NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (journey_id, version, name)
) WITHOUT ROWID;
-- Broadcasts: each campaign's definition, where it stands, and how far its audience is read.
CREATE TABLE IF NOT EXISTS campaigns (
    id         TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    cursor     TEXT NOT NULL DEFAULT '',
    appended   INTEGER NOT NULL DEFAULT 0,
    body       BLOB NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
-- An A/B-tested campaign's phase, the moment its test is decided, and the decision (JSON).
CREATE TABLE IF NOT EXISTS campaign_tests (
    campaign_id TEXT PRIMARY KEY,
    phase       TEXT NOT NULL,
    decide_at   REAL,
    decision    BLOB
) WITHOUT ROWID;
-- How many contacts of each variant's test share were sent it, opened, clicked, converted.
CREATE TABLE IF NOT EXISTS variant_counts (
    campaign_id TEXT NOT NULL,
    variant     TEXT NOT NULL,
    figure      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, variant, figure)
) WITHOUT ROWID;
-- Opens, clicks (by people and by machines) and conversions, with their revenue, per campaign
-- or journey (`owner`: campaign:<id>, journey:<id>); see mailpulse.runtime.engagement.
CREATE TABLE IF NOT EXISTS engagement_counts (
    owner  TEXT NOT NULL,
    figure TEXT NOT NULL,
    count  INTEGER NOT NULL,
    amount REAL NOT NULL,
    PRIMARY KEY (owner, figure)
) WITHOUT ROWID;
-- Sends counted against a quota ([delivery.limits] hourly, daily), per window of it.
CREATE TABLE IF NOT EXISTS send_quotas (
    name    TEXT PRIMARY KEY,
    used    INTEGER NOT NULL,
    ends_at REAL NOT NULL
) WITHOUT ROWID;
-- The protective breaker's counts (see mailpulse.policy.breaker): marketing messages sent and
-- complaints about marketing, per bucket of time (its start), added by the fold's commits.
CREATE TABLE IF NOT EXISTS complaint_counts (
    bucket     REAL PRIMARY KEY,
    sends      INTEGER NOT NULL,
    complaints INTEGER NOT NULL
) WITHOUT ROWID;
-- The lifecycle rollup (see mailpulse.runtime.rollup): what became of messages per hour (its
-- start, UTC) and per campaign, journey and template ('' for none), added by the fold's commits;
-- GET /admin/stats sums it.
CREATE TABLE IF NOT EXISTS lifecycle_rollup (
    hour     INTEGER NOT NULL,
    campaign TEXT NOT NULL,
    journey  TEXT NOT NULL,
    template TEXT NOT NULL,
    figure   TEXT NOT NULL,
    count    INTEGER NOT NULL,
    amount   REAL NOT NULL,
    PRIMARY KEY (hour, campaign, journey, template, figure)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_by_campaign ON lifecycle_rollup (campaign, hour)
    WHERE campaign <> '';
CREATE INDEX IF NOT EXISTS rollup_by_journey ON lifecycle_rollup (journey, hour)
    WHERE journey <> '';
CREATE INDEX IF NOT EXISTS rollup_by_template ON lifecycle_rollup (template, hour);
-- The protective breaker itself (see mailpulse.store.interface.BreakerRecord): one row, each
-- move of it one conditional update.
CREATE TABLE IF NOT EXISTS breaker (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    alert_at            REAL,
    tripped_at          REAL,
    reason              TEXT NOT NULL DEFAULT '',
    sends               INTEGER NOT NULL DEFAULT 0,
    complaints          INTEGER NOT NULL DEFAULT 0,
    since               REAL NOT NULL DEFAULT 0,
    resumed_at          REAL,
    resumed_by          TEXT NOT NULL DEFAULT '',
    judged_from         REAL NOT NULL DEFAULT 0,
    baseline_sends      INTEGER NOT NULL DEFAULT 0,
    baseline_complaints INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO breaker (id) VALUES (1);
-- The suppression list: addresses not to be mailed, or not for a topic ('' = every one), keyed
-- by the SHA-256 of the address so that an erased entry (address NULL) still matches.
-- `strength` ranks the reasons (see mailpulse.types.Suppression): the stronger entry stands.
CREATE TABLE IF NOT EXISTS suppressions (
    address_hash TEXT NOT NULL,
    topic        TEXT NOT NULL,
    address      TEXT,
    reason       TEXT NOT NULL,
    strength     INTEGER NOT NULL,
    detail       TEXT NOT NULL,
    source       TEXT NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (address_hash, topic)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suppressions_by_reason ON suppressions (reason, address_hash, topic);
-- Consent records: what each contact said about a topic ('' = all marketing), when, where
-- from, with the wording shown (see mailpulse.types.ConsentRecord); one per event (`id`).
CREATE TABLE IF NOT EXISTS consents (
    id         TEXT PRIMARY KEY,
    contact_id TEXT NOT NULL,
    address    TEXT NOT NULL,
    topic      TEXT NOT NULL,
    action     TEXT NOT NULL,
    source     TEXT NOT NULL,
    ip         TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    wording    TEXT NOT NULL,
    at         REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS consents_by_contact ON consents (contact_id, at);
CREATE TABLE IF NOT EXISTS unshipped_lifecycle (
    message_id TEXT PRIMARY KEY,
    body       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS journey_versions (
    journey_id TEXT NOT NULL,
    version    TEXT NOT NULL,
    body       BLOB NOT NULL,
    PRIMARY KEY (journey_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    key             TEXT PRIMARY KEY,
    contact_id      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    message_id      TEXT NOT NULL DEFAULT '',
    last_code       INTEGER NOT NULL DEFAULT 0,
    last_text       TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    intent          BLOB NOT NULL,
    address         TEXT  -- the recipient's digest (see outbox-address-index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS outbox_by_contact ON outbox (contact_id, created_at);
-- A bounce or a complaint finds its send by the Message-ID its return path names (see
-- mailpulse.feedback.verp); rows not yet tried have none and stay out of the index.
CREATE INDEX IF NOT EXISTS outbox_by_message_id ON outbox (message_id) WHERE message_id <> '';
-- Soft bounces counted against an address for [policy] soft_bounce_limit, one per
-- Email Bounced event; those older than the limit's period are forgotten.
CREATE TABLE IF NOT EXISTS soft_bounces (
    address_hash TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    at           REAL NOT NULL,
    PRIMARY KEY (address_hash, event_id)
) WITHOUT ROWID;
-- The rows waiting to be sent, one index per status: SQLite uses a partial index only for a
-- query that names its very condition, and a query for one status against an index of both
-- scanned the whole outbox (every second, for the deferred rows due). The queued one also
-- counts the messages waiting for delivery, which a campaign reads before it queues more.
DROP INDEX IF EXISTS outbox_due;
DROP INDEX IF EXISTS outbox_queued;
CREATE INDEX IF NOT EXISTS outbox_queued_due ON outbox (next_attempt_at) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS outbox_deferred_due ON outbox (next_attempt_at)
    WHERE status = 'deferred';
-- Each campaign's messages by status, kept by the outbox's own triggers: a campaign's progress
-- is read every second or so, and counting its rows each time would stall the event loop
-- for longer the larger the campaign. Keys are "campaign:<id>:<contact>", ids have no ':'.
CREATE TABLE IF NOT EXISTS campaign_messages (
    campaign TEXT NOT NULL,
    status   TEXT NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (campaign, status)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS campaign_message_added AFTER INSERT ON outbox
WHEN NEW.key GLOB 'campaign:*'
BEGIN
    INSERT INTO campaign_messages
    VALUES (substr(NEW.key, 10, instr(substr(NEW.key, 10), ':') - 1), NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS campaign_message_moved AFTER UPDATE OF status ON outbox
WHEN NEW.key GLOB 'campaign:*' AND NEW.status <> OLD.status
BEGIN
    UPDATE campaign_messages SET n = n - 1
    WHERE campaign = substr(OLD.key, 10, instr(substr(OLD.key, 10), ':') - 1)
      AND status = OLD.status;
    INSERT INTO campaign_messages
    VALUES (substr(NEW.key, 10, instr(substr(NEW.key, 10), ':') - 1), NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
-- A state file from before these counts: counted once, when the table is still empty.
INSERT INTO campaign_messages
SELECT substr(key, 10, instr(substr(key, 10), ':') - 1), status, COUNT(*) FROM outbox
WHERE key GLOB 'campaign:*' AND NOT EXISTS (SELECT 1 FROM campaign_messages)
GROUP BY 1, 2;

-- name: get-checkpoint
SELECT "offset" FROM checkpoints WHERE name = 'fold'

-- name: set-checkpoint
INSERT INTO checkpoints (name, "offset") VALUES ('fold', ?)
ON CONFLICT (name) DO UPDATE SET "offset" = excluded."offset"

-- name: upsert-contact
INSERT INTO contacts (id, body) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET body = excluded.body

-- name: delete-contact
DELETE FROM contacts WHERE id = ?

-- name: get-contact
SELECT body FROM contacts WHERE id = ?

-- name: upsert-identity
INSERT INTO identities (key, contact_id) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET contact_id = excluded.contact_id

-- name: merge-identities
UPDATE identities SET contact_id = ? WHERE contact_id = ?

-- name: merge-instances
UPDATE journey_instances SET contact_id = ? WHERE contact_id = ?

-- name: identities-of
SELECT key FROM identities WHERE contact_id = ? ORDER BY key

-- name: upsert-instance
INSERT INTO journey_instances (instance_id, contact_id, journey_id, status, wake_at, entered_at, body)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance_id) DO UPDATE SET
    contact_id = excluded.contact_id, status = excluded.status,
    wake_at = excluded.wake_at, body = excluded.body

-- name: instances-for
SELECT instance_id, contact_id, journey_id, status, wake_at, entered_at, body
FROM journey_instances WHERE contact_id = ? ORDER BY entered_at

-- name: due-instances
-- A paused journey's timers wait for its resume.
SELECT instance_id, contact_id, journey_id, status, wake_at, entered_at, body
FROM journey_instances
WHERE status = 'active' AND wake_at IS NOT NULL AND wake_at <= ?
    AND journey_id NOT IN (SELECT journey_id FROM journey_controls WHERE status = 'paused')
ORDER BY wake_at LIMIT ?

-- name: next-wake
SELECT MIN(wake) FROM (
    SELECT MIN(wake_at) AS wake FROM journey_instances
    WHERE status = 'active' AND wake_at IS NOT NULL
        AND journey_id NOT IN (SELECT journey_id FROM journey_controls WHERE status = 'paused')
    UNION ALL
    SELECT MIN(wake_at) FROM segment_timers
)

-- name: set-segment-timer
INSERT INTO segment_timers (contact_id, wake_at) VALUES (?, ?)
ON CONFLICT (contact_id) DO UPDATE SET wake_at = excluded.wake_at

-- name: drop-segment-timer
DELETE FROM segment_timers WHERE contact_id = ?

-- name: due-segment-timers
SELECT contact_id FROM segment_timers WHERE wake_at <= ? ORDER BY wake_at LIMIT ?

-- name: add-outbox-address
-- A state file from before the column.
ALTER TABLE outbox ADD COLUMN address TEXT

-- name: outbox-address-index
-- The messages to an address, for the dashboard's search (an erased contact's have none).
CREATE INDEX IF NOT EXISTS outbox_by_address ON outbox (address, created_at)
WHERE address IS NOT NULL

-- name: insert-outbox
INSERT OR IGNORE INTO outbox
    (key, contact_id, status, attempts, next_attempt_at, message_id, last_code, last_text,
     created_at, updated_at, intent, address)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)

-- name: outbox-columns
SELECT intent, status, attempts, next_attempt_at, message_id, last_code, last_text, updated_at
FROM outbox

-- name: update-outbox
UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = ?, message_id = ?,
    last_code = ?, last_text = ?, updated_at = ?
WHERE key = ?

-- name: outbox-counts
SELECT status, COUNT(*) FROM outbox GROUP BY status

-- name: save-journey-version
INSERT OR IGNORE INTO journey_versions (journey_id, version, body) VALUES (?, ?, ?)

-- name: journey-versions
SELECT journey_id, version, body FROM journey_versions

-- name: keep-lifecycle
INSERT OR IGNORE INTO unshipped_lifecycle (message_id, body) VALUES (?, ?)

-- name: unshipped-lifecycle
SELECT body FROM unshipped_lifecycle ORDER BY rowid LIMIT ?

-- name: forget-lifecycle
DELETE FROM unshipped_lifecycle WHERE message_id = ?

-- name: note-interest
INSERT INTO object_interest (object, contact_id, last_at) VALUES (?, ?, ?)
ON CONFLICT (object, contact_id) DO UPDATE SET last_at = max(last_at, excluded.last_at)

-- name: merge-interest
INSERT INTO object_interest (object, contact_id, last_at)
SELECT object, ?, last_at FROM object_interest WHERE contact_id = ? AND true
ON CONFLICT (object, contact_id) DO UPDATE SET last_at = max(last_at, excluded.last_at)

-- name: drop-interest
DELETE FROM object_interest WHERE contact_id = ?

-- name: interested
SELECT contact_id FROM object_interest WHERE object = ? AND last_at >= ? ORDER BY contact_id

-- name: set-journey-control
INSERT INTO journey_controls (journey_id, status, changed_at) VALUES (?, ?, ?)
ON CONFLICT (journey_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at

-- name: journey-controls
SELECT journey_id, status FROM journey_controls

-- name: add-journey-count
INSERT INTO journey_counts (journey_id, version, name, count) VALUES (?, ?, ?, ?)
ON CONFLICT (journey_id, version, name) DO UPDATE SET count = count + excluded.count

-- name: journey-counts
SELECT version, name, count FROM journey_counts WHERE journey_id = ? ORDER BY version, name

-- name: active-instance-counts
SELECT journey_id, COUNT(*) FROM journey_instances WHERE status = 'active' GROUP BY journey_id

-- name: set-segment-set
INSERT INTO segment_sets (partition, fingerprint) VALUES (0, ?)
ON CONFLICT (partition) DO UPDATE SET fingerprint = excluded.fingerprint

-- name: segment-set
SELECT fingerprint FROM segment_sets WHERE partition = 0

-- name: contacts-after
SELECT body FROM contacts WHERE id > ? ORDER BY id LIMIT ?

-- name: identities-after
SELECT key, contact_id FROM identities WHERE key > ? ORDER BY key LIMIT ?

-- name: add-segment-members
INSERT INTO segment_members (partition, segment, count) VALUES (0, ?, ?)
ON CONFLICT (partition, segment) DO UPDATE SET count = count + excluded.count

-- name: clear-segment-members
DELETE FROM segment_members WHERE partition = 0

-- name: segment-members
SELECT segment, SUM(count) FROM segment_members GROUP BY segment

-- name: create-campaign
INSERT OR IGNORE INTO campaigns (id, status, body, updated_at) VALUES (?, ?, ?, ?)

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
FROM campaigns LEFT JOIN campaign_tests ON campaign_id = id WHERE id = ?

-- name: move-campaign-on
UPDATE campaigns SET status = ?, cursor = ?, updated_at = ?
WHERE id = ? AND status = ? AND updated_at = ?

-- name: set-campaign-test
INSERT INTO campaign_tests (campaign_id, phase, decide_at, decision) VALUES (?, ?, ?, ?)
ON CONFLICT (campaign_id) DO UPDATE
SET phase = excluded.phase, decide_at = excluded.decide_at, decision = excluded.decision

-- name: add-variant-count
INSERT INTO variant_counts (campaign_id, variant, figure, count) VALUES (?, ?, ?, ?)
ON CONFLICT (campaign_id, variant, figure) DO UPDATE SET count = count + excluded.count

-- name: variant-counts
SELECT variant, figure, count FROM variant_counts WHERE campaign_id = ?

-- name: add-engagement
INSERT INTO engagement_counts (owner, figure, count, amount) VALUES (?, ?, ?, ?)
ON CONFLICT (owner, figure) DO UPDATE
SET count = count + excluded.count, amount = amount + excluded.amount

-- name: engagement
SELECT figure, count, amount FROM engagement_counts WHERE owner = ?

-- name: advance-campaign
-- Only while it runs: a pause or cancel that came meanwhile stands.
UPDATE campaigns SET cursor = ?, appended = appended + ?, status = ?, updated_at = ?
WHERE id = ? AND status IN ('scheduled', 'sending')

-- name: set-campaign-status
UPDATE campaigns SET status = ?, updated_at = ? WHERE id = ?

-- name: campaign-messages
SELECT status, n FROM campaign_messages WHERE campaign = ? AND n > 0

-- name: queued-count
SELECT COUNT(*) FROM outbox WHERE status = 'queued'

-- name: take-quota
-- One more send in window ?1 unless ?2 are counted already; RETURNING no row when they are.
INSERT INTO send_quotas (name, used, ends_at) VALUES (?1, 1, ?3)
ON CONFLICT (name) DO UPDATE SET used = used + 1 WHERE used < ?2
RETURNING used

-- name: return-quota
UPDATE send_quotas SET used = used - 1 WHERE name = ? AND used > 0

-- name: forget-quotas
DELETE FROM send_quotas WHERE ends_at < ?

-- name: quota-used
SELECT name, used FROM send_quotas WHERE name IN (SELECT value FROM json_each(?))

-- name: add-rollup
INSERT INTO lifecycle_rollup (hour, campaign, journey, template, figure, count, amount)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (hour, campaign, journey, template, figure) DO UPDATE
SET count = count + excluded.count, amount = amount + excluded.amount

-- name: rollup
-- ?1, ?2: the hours from and up to; ?3: the step in seconds (0: the whole range).
SELECT '', CASE WHEN ?3 > 0 THEN hour - hour % ?3 ELSE 0 END AS start, figure,
    SUM(count), SUM(amount)
FROM lifecycle_rollup WHERE hour >= ?1 AND hour < ?2
GROUP BY start, figure

-- name: rollup-by
-- {column}: one of ROLLUP_DIMENSIONS (mailpulse.store.interface), never anything else.
SELECT {column}, CASE WHEN ?3 > 0 THEN hour - hour % ?3 ELSE 0 END AS start, figure,
    SUM(count), SUM(amount)
FROM lifecycle_rollup WHERE hour >= ?1 AND hour < ?2 AND {column} <> ''
GROUP BY {column}, start, figure

-- name: rollup-of
-- As rollup-by, of one value (?4) of {column}: through its index (partial: of rows
-- that have one).
SELECT {column}, CASE WHEN ?3 > 0 THEN hour - hour % ?3 ELSE 0 END AS start, figure,
    SUM(count), SUM(amount)
FROM lifecycle_rollup WHERE {column} = ?4 AND {column} <> '' AND hour >= ?1 AND hour < ?2
GROUP BY {column}, start, figure

-- name: add-complaint-counts
INSERT INTO complaint_counts (bucket, sends, complaints) VALUES (?, ?, ?)
ON CONFLICT (bucket) DO UPDATE
SET sends = sends + excluded.sends, complaints = complaints + excluded.complaints

-- name: complaint-counts
SELECT COALESCE(SUM(sends), 0), COALESCE(SUM(complaints), 0) FROM complaint_counts
WHERE bucket >= ?

-- name: forget-complaint-counts
DELETE FROM complaint_counts WHERE bucket < ?

-- name: breaker
SELECT alert_at, tripped_at, reason, sends, complaints, since, resumed_at, resumed_by,
    judged_from, baseline_sends, baseline_complaints
FROM breaker

-- name: raise-complaint-alert
UPDATE breaker SET alert_at = ? WHERE alert_at IS NULL

-- name: resolve-complaint-alert
UPDATE breaker SET alert_at = NULL WHERE alert_at IS NOT NULL

-- name: trip-breaker
UPDATE breaker SET tripped_at = ?, reason = ?, sends = ?, complaints = ?, since = ?
WHERE tripped_at IS NULL AND judged_from = ?

-- name: resume-breaker
-- ?3: the bucket the resume falls in, whose counts so far are not judged again.
UPDATE breaker SET tripped_at = NULL, resumed_at = ?1, resumed_by = ?2, judged_from = ?1,
    baseline_sends = COALESCE((SELECT sends FROM complaint_counts WHERE bucket = ?3), 0),
    baseline_complaints = COALESCE((SELECT complaints FROM complaint_counts WHERE bucket = ?3), 0)
WHERE tripped_at IS NOT NULL

-- name: hold-for-breaker
UPDATE outbox SET status = 'deferred', next_attempt_at = ?1, last_code = 0, last_text = 'breaker',
    updated_at = ?2
WHERE key = ?3 AND status IN ('queued', 'deferred')

-- name: release-held
-- Literal predicates: those of the deferred rows' partial index (see the schema).
UPDATE outbox SET next_attempt_at = ?1, updated_at = ?1
WHERE status = 'deferred' AND next_attempt_at >= ?2

-- name: add-suppression
-- Unless the address is erased (its erased entry is all that is kept of it); over an entry of
-- the same address and topic only when stronger. RETURNING a row when it took effect.
INSERT INTO suppressions
    (address_hash, topic, address, reason, strength, detail, source, created_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
WHERE ?4 = 'erased'
    OR NOT EXISTS (SELECT 1 FROM suppressions WHERE address_hash = ?1 AND reason = 'erased')
ON CONFLICT (address_hash, topic) DO UPDATE SET
    address = excluded.address, reason = excluded.reason, strength = excluded.strength,
    detail = excluded.detail, source = excluded.source, created_at = excluded.created_at
WHERE excluded.strength > suppressions.strength
RETURNING address_hash

-- name: forget-erased-address
-- An erasure: the address's other entries go (the erased one blocks everything they did).
DELETE FROM suppressions WHERE address_hash = ? AND topic <> ''

-- name: suppression-columns
SELECT address_hash, topic, address, reason, detail, source, created_at FROM suppressions

-- name: suppressions-after
SELECT address_hash, topic, address, reason, detail, source, created_at FROM suppressions
WHERE (address_hash, topic) > (?1, ?2)
    AND (?3 IS NULL OR reason = ?3) AND (?4 IS NULL OR topic = ?4)
ORDER BY address_hash, topic LIMIT ?5

-- name: remove-suppression
DELETE FROM suppressions WHERE address_hash = ? AND topic = ? AND reason <> 'erased'

-- name: lift-unsubscribe
-- A resubscribe: the unsubscribe entry of the address and topic, and no entry of another reason.
DELETE FROM suppressions WHERE address_hash = ? AND topic = ? AND reason = 'unsubscribe'

-- name: add-consent
INSERT INTO consents (id, contact_id, address, topic, action, source, ip, user_agent, wording, at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING

-- name: merge-consents
UPDATE consents SET contact_id = ? WHERE contact_id = ?

-- name: consents-of
-- The latest `limit` (?2) of a contact's records; the caller puts them oldest first.
SELECT id, contact_id, address, topic, action, source, ip, user_agent, wording, at FROM consents
WHERE contact_id = ?1 ORDER BY at DESC, id DESC LIMIT ?2

-- name: add-soft-bounce
INSERT OR IGNORE INTO soft_bounces (address_hash, event_id, at) VALUES (?, ?, ?)

-- name: forget-soft-bounces
DELETE FROM soft_bounces WHERE address_hash = ? AND at < ?

-- name: soft-bounce-columns
SELECT address_hash, at FROM soft_bounces

-- name: erased-ids
SELECT ?1 UNION SELECT key FROM identities WHERE contact_id = ?1

-- name: erased-outbox
SELECT key, status, intent FROM outbox WHERE contact_id IN (SELECT value FROM json_each(?))

-- name: scrub-outbox-row
UPDATE outbox SET intent = ?, status = ?, last_text = ?, updated_at = ?, address = NULL
WHERE key = ?

-- name: erase-instances
DELETE FROM journey_instances WHERE contact_id IN (SELECT value FROM json_each(?))

-- name: erase-interest
DELETE FROM object_interest WHERE contact_id IN (SELECT value FROM json_each(?))

-- name: erase-segment-timers
DELETE FROM segment_timers WHERE contact_id IN (SELECT value FROM json_each(?))

-- name: erase-consents
DELETE FROM consents WHERE contact_id IN (SELECT value FROM json_each(?))

-- name: kept-lifecycle
SELECT message_id, body FROM unshipped_lifecycle

-- name: scrub-lifecycle
UPDATE unshipped_lifecycle SET body = ? WHERE message_id = ?
