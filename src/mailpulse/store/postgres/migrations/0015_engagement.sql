-- Opens, clicks (by people and by machines) and conversions, with their revenue, per campaign
-- or journey (`owner`: campaign:<id>, journey:<id>), added to by the fold of every partition in
-- its commits (see mailpulse.runtime.engagement).
CREATE TABLE engagement_counts (
    owner  text NOT NULL,
    figure text NOT NULL,
    count  bigint NOT NULL,
    amount double precision NOT NULL,
    PRIMARY KEY (owner, figure)
);
