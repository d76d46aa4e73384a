-- Consent records: what each contact said about a topic ('' = all marketing), when, where
-- from, with the wording shown (see mailpulse.types.ConsentRecord); one per event (`id`).
CREATE TABLE consents (
    id         text PRIMARY KEY,
    contact_id text NOT NULL,
    address    text NOT NULL,
    topic      text NOT NULL,
    action     text NOT NULL,
    source     text NOT NULL,
    ip         text NOT NULL,
    user_agent text NOT NULL,
    wording    text NOT NULL,
    at         double precision NOT NULL
);
CREATE INDEX consents_by_contact ON consents (contact_id, at);
