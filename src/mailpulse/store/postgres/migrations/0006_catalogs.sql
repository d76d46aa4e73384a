-- Catalogs: objects such as products whose current fields templates read at render time.
-- Ids sort bytewise (COLLATE "C"), as in SQLite, so that paging by id reads the same in both.

CREATE TABLE catalog_items (
    catalog    text NOT NULL,
    id         text COLLATE "C" NOT NULL,
    fields     bytea NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (catalog, id)
);

-- Events derived from item updates, kept with the update until they are in the log.
CREATE TABLE catalog_events (
    message_id text PRIMARY KEY,
    seq        bigserial NOT NULL,
    body       bytea NOT NULL
);
CREATE INDEX catalog_events_by_seq ON catalog_events (seq);
