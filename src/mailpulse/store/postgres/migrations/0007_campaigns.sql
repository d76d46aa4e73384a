-- Broadcasts: each campaign's definition, where it stands, and how far its audience is read.
CREATE TABLE campaigns (
    id         text PRIMARY KEY,
    status     text NOT NULL,
    cursor     text NOT NULL DEFAULT '',
    appended   bigint NOT NULL DEFAULT 0,
    body       bytea NOT NULL,
    updated_at double precision NOT NULL
);

-- How many messages wait for delivery: what a campaign reads before it queues more.
CREATE INDEX outbox_queued ON outbox (created_at) WHERE status = 'queued';
