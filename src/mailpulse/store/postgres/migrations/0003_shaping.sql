-- Traffic shaping shared by every worker: per destination (a shaping rule's domain, or a
-- recipient domain under the default rule), the end of its timeline of reserved turns, the
-- GCRA "theoretical arrival time", in epoch seconds of the database's clock. A row whose end
-- lies in the past means the same as no row.
--
-- Unlogged: a reservation then commits without waiting for a WAL flush, and what a crash
-- loses (the table comes back empty) is only turns that have mostly passed already.

CREATE UNLOGGED TABLE shaping_timelines (
    destination text PRIMARY KEY,
    tat         double precision NOT NULL
);
