-- A bounce or a complaint finds its send by the Message-ID its return path names (see
-- mailpulse.feedback.verp); rows not yet tried have none and stay out of the index.
CREATE INDEX outbox_by_message_id ON outbox (message_id) WHERE message_id <> '';

-- Soft bounces counted against an address for [policy] soft_bounce_limit, one per
-- Email Bounced event, shared by every partition; those older than the limit's period are
-- forgotten.
CREATE TABLE soft_bounces (
    address_hash text NOT NULL,
    event_id     text NOT NULL,
    at           double precision NOT NULL,
    PRIMARY KEY (address_hash, event_id)
);
