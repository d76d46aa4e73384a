-- When time alone may next change a contact's segment memberships (a window passing, a
-- relative date reached): the partition that owns the contact re-evaluates it then.

CREATE TABLE segment_timers (
    contact_id text PRIMARY KEY,
    partition  integer NOT NULL,
    wake_at    double precision NOT NULL
);
CREATE INDEX segment_timers_by_wake ON segment_timers (partition, wake_at);

-- The segment set each partition's stored memberships were computed with: a fold that
-- starts with another set computes them again from the whole history (a backfill).
CREATE TABLE segment_sets (
    partition   integer PRIMARY KEY,
    fingerprint text NOT NULL
);

-- How many contacts are in each segment, per partition (a partition's count may go below
-- zero when a contact merges into another partition's: the sum is what counts).
CREATE TABLE segment_members (
    partition integer NOT NULL,
    segment   text NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (partition, segment)
);

-- Who showed interest in which object (viewed a product, wished for it), for the
-- notifications an event about the object fans out (`Back In Stock`): an index, so a fan-out
-- reads its audience instead of scanning every contact.
CREATE TABLE object_interest (
    object     text NOT NULL,
    contact_id text NOT NULL,
    last_at    double precision NOT NULL,
    PRIMARY KEY (object, contact_id)
);
CREATE INDEX object_interest_by_contact ON object_interest (contact_id);

-- Journeys paused or archived from the admin API (a journey not listed is live).
CREATE TABLE journey_controls (
    journey_id text PRIMARY KEY,
    status     text NOT NULL,
    changed_at double precision NOT NULL
);

-- How many contacts entered, finished, left, took each split arm: per journey version.
CREATE TABLE journey_counts (
    journey_id text NOT NULL,
    version    text NOT NULL,
    name       text NOT NULL,
    count      bigint NOT NULL,
    PRIMARY KEY (journey_id, version, name)
);
