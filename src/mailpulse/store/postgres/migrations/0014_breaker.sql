-- The protective breaker's counts (see mailpulse.policy.breaker): marketing messages sent and
-- complaints about marketing, per bucket of time (its start) and partition, added by each
-- partition's fold in its commits (a row of its own: folds of other partitions never wait for
-- its lock). The breaker reads their sums.
CREATE TABLE complaint_counts (
    bucket     double precision NOT NULL,
    partition  integer NOT NULL,
    sends      bigint NOT NULL,
    complaints bigint NOT NULL,
    PRIMARY KEY (bucket, partition)
);

-- The protective breaker itself (see mailpulse.store.interface.BreakerRecord): one row, shared
-- by every worker, each move of it one conditional update.
CREATE TABLE breaker (
    id                  integer PRIMARY KEY CHECK (id = 1),
    alert_at            double precision,
    tripped_at          double precision,
    reason              text NOT NULL DEFAULT '',
    sends               bigint NOT NULL DEFAULT 0,
    complaints          bigint NOT NULL DEFAULT 0,
    since               double precision NOT NULL DEFAULT 0,
    resumed_at          double precision,
    resumed_by          text NOT NULL DEFAULT '',
    judged_from         double precision NOT NULL DEFAULT 0,
    baseline_sends      bigint NOT NULL DEFAULT 0,
    baseline_complaints bigint NOT NULL DEFAULT 0
);
INSERT INTO breaker (id) VALUES (1);
