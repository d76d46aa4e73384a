-- One message's lifecycle events, found at once for its timeline (the dashboard's message
-- view): the send's idempotency key, set on mailpulse's own lifecycle events only. Events
-- appended before this migration have none and stay out of the index.
ALTER TABLE events ADD COLUMN send_key text;
CREATE INDEX events_by_send ON events (send_key, seq) WHERE send_key IS NOT NULL;
