-- Derived state. Journey instances, outbox rows and unshipped lifecycle events belong to the
-- partition whose fold wrote them: that partition's worker fires their timers, sends them
-- and ships them.

CREATE TABLE checkpoints (
    partition integer PRIMARY KEY,
    "offset"  bigint NOT NULL
);

CREATE TABLE contacts (
    id   text PRIMARY KEY,
    body bytea NOT NULL
);

CREATE TABLE identities (
    key        text PRIMARY KEY,
    contact_id text NOT NULL
);
CREATE INDEX identities_by_contact ON identities (contact_id);

CREATE TABLE journey_instances (
    instance_id text PRIMARY KEY,
    partition   integer NOT NULL,
    contact_id  text NOT NULL,
    journey_id  text NOT NULL,
    status      text NOT NULL,
    wake_at     double precision,
    entered_at  double precision NOT NULL,
    body        bytea NOT NULL
);
CREATE INDEX instances_by_contact ON journey_instances (contact_id);
CREATE INDEX instances_by_wake ON journey_instances (partition, wake_at)
    WHERE status = 'active' AND wake_at IS NOT NULL;

CREATE TABLE unshipped_lifecycle (
    message_id text PRIMARY KEY,
    partition  integer NOT NULL,
    -- shipping order: the order they were kept in
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    body       bytea NOT NULL
);
CREATE INDEX unshipped_by_partition ON unshipped_lifecycle (partition, seq);

CREATE TABLE journey_versions (
    journey_id text NOT NULL,
    version    text NOT NULL,
    body       bytea NOT NULL,
    PRIMARY KEY (journey_id, version)
);

CREATE TABLE outbox (
    key             text PRIMARY KEY,
    partition       integer NOT NULL,
    contact_id      text NOT NULL,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at double precision NOT NULL,
    message_id      text NOT NULL DEFAULT '',
    last_code       integer NOT NULL DEFAULT 0,
    last_text       text NOT NULL DEFAULT '',
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    intent          bytea NOT NULL
);
CREATE INDEX outbox_due ON outbox (partition, next_attempt_at)
    WHERE status IN ('queued', 'deferred');
CREATE INDEX outbox_by_contact ON outbox (contact_id, created_at);
