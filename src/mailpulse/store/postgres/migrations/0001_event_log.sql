-- The event log, partitioned by contact key. Every partition numbers its events from 1
-- without gaps; its head is the row a writer locks to take the next offsets.

CREATE TABLE cluster (
    name  text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE log_partitions (
    partition integer PRIMARY KEY,
    head      bigint NOT NULL DEFAULT 0
);

CREATE TABLE events (
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    -- append order across partitions, for a contact whose identities hash apart
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    message_id  text NOT NULL,
    contact_key text NOT NULL,
    type        text NOT NULL,
    received_at double precision NOT NULL,
    body        bytea NOT NULL,
    PRIMARY KEY (partition, "offset")
);
CREATE INDEX events_by_contact ON events (contact_key, seq);

-- The dedup window: a message id seen here is dropped by every writer, in every process.
CREATE TABLE seen_message_ids (
    message_id  text PRIMARY KEY,
    received_at double precision NOT NULL
);
CREATE INDEX seen_by_time ON seen_message_ids (received_at);
