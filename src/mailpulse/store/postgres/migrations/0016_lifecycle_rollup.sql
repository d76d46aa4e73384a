-- The lifecycle rollup (see mailpulse.runtime.rollup): what became of messages per hour (its
-- start, UTC) and per campaign, journey and template ('' for none), added by each partition's
-- fold in its commits (a row of its own: folds of other partitions never wait for its lock);
-- GET /admin/stats sums it.
CREATE TABLE lifecycle_rollup (
    hour      bigint NOT NULL,
    campaign  text NOT NULL,
    journey   text NOT NULL,
    template  text NOT NULL,
    figure    text NOT NULL,
    partition integer NOT NULL,
    count     bigint NOT NULL,
    amount    double precision NOT NULL,
    PRIMARY KEY (hour, campaign, journey, template, figure, partition)
);
CREATE INDEX rollup_by_campaign ON lifecycle_rollup (campaign, hour) WHERE campaign <> '';
CREATE INDEX rollup_by_journey ON lifecycle_rollup (journey, hour) WHERE journey <> '';
CREATE INDEX rollup_by_template ON lifecycle_rollup (template, hour);
