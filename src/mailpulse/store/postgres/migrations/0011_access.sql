-- Scoped API keys (only their SHA-256 is kept) and the audit log of admin actions, shared by
-- every API node (see mailpulse.access). Neither is derived from the event log.
CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    digest     bytea NOT NULL UNIQUE,
    prefix     text NOT NULL,
    scope      text NOT NULL,
    name       text NOT NULL,
    created_at double precision NOT NULL,
    revoked_at double precision
);

CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      double precision NOT NULL,
    actor   text NOT NULL,
    key_id  text NOT NULL,
    scope   text NOT NULL,
    method  text NOT NULL,
    path    text NOT NULL,
    target  text NOT NULL,
    summary text NOT NULL,
    status  integer NOT NULL,
    outcome text NOT NULL,
    ip      text NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (at);
