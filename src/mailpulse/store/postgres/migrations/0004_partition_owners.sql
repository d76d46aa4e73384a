-- Who last ran each partition, and whether it stopped cleanly: with every send it made
-- recorded. A worker that takes a partition its previous owner did not stop cleanly (killed,
-- or cut off by a database restart while sends were in flight) gives that owner time to come
-- back and record them before it sends anything the outbox still shows as queued.

CREATE TABLE partition_owners (
    partition integer PRIMARY KEY,
    worker    text NOT NULL,
    clean     boolean NOT NULL
);
