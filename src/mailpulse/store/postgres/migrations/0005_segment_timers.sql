-- When time alone may next change a contact's segment memberships (a window passing, a
-- relative date reached): the partition that owns the contact re-evaluates it then.

CREATE TABLE segment_timers (
    contact_id text PRIMARY KEY,
    partition  integer NOT NULL,
    wake_at    double precision NOT NULL
);
CREATE INDEX segment_timers_by_wake ON segment_timers (partition, wake_at);
