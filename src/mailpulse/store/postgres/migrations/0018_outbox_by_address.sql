-- The messages to an address, for the dashboard's search: a digest of the recipient (see
-- mailpulse.store.rows.address_key), cleared when the contact is erased. Rows made before
-- this migration have none and stay out of the index.
ALTER TABLE outbox ADD COLUMN address text;
CREATE INDEX outbox_by_address ON outbox (address, created_at) WHERE address IS NOT NULL;
