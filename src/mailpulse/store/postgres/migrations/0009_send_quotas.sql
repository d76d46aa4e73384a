-- Sends counted against a quota ([delivery.limits] hourly, daily), per window of it (its name
-- says which quota and when the window starts), shared by every worker. Logged, unlike the
-- shaping timelines: a restart must not give a used-up quota back.
CREATE TABLE send_quotas (
    name    text PRIMARY KEY,
    used    integer NOT NULL,
    ends_at double precision NOT NULL
);
