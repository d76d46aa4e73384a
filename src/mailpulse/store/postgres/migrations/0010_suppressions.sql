-- The suppression list, shared by every partition: addresses not to be mailed, or not for a
-- topic ('' = every one), keyed by the SHA-256 of the address so that an erased entry
-- (address NULL) still matches. `strength` ranks the reasons (see mailpulse.types.Suppression):
-- of two entries for one address and topic, the stronger stands.
CREATE TABLE suppressions (
    address_hash text NOT NULL,
    topic        text NOT NULL,
    address      text,
    reason       text NOT NULL,
    strength     smallint NOT NULL,
    detail       text NOT NULL,
    source       text NOT NULL,
    created_at   double precision NOT NULL,
    PRIMARY KEY (address_hash, topic)
);
CREATE INDEX suppressions_by_reason ON suppressions (reason, address_hash, topic);
