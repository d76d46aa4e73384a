-- A/B tests on broadcasts: each tested campaign's phase, the moment its test is decided and
-- the decision (JSON); and how many contacts of each variant's test share were sent it,
-- opened, clicked and converted, added to by the fold of every partition in its commits.
CREATE TABLE campaign_tests (
    campaign_id text PRIMARY KEY,
    phase       text NOT NULL,
    decide_at   double precision,
    decision    bytea
);

CREATE TABLE variant_counts (
    campaign_id text NOT NULL,
    variant     text NOT NULL,
    figure      text NOT NULL,
    count       bigint NOT NULL,
    PRIMARY KEY (campaign_id, variant, figure)
);
