"""Privacy: what erasure leaves of a contact's data (`scrub`), the erase event that carries an
erasure through the log (`erasure`), and the retention of raw events (`retention`).

An erasure is asked over the admin API and appended to the log as an `erase` event; the fold
that owns the contact carries it out: the profile becomes a tombstone (its id and when), its
address a hashed `erased` suppression entry, and everything else held on it is scrubbed in the
same batch (its events in the log, its messages, journeys, timers, interests, consent records).
Its ids stay erased: whatever arrives under them later is folded as nothing and scrubbed too.
"""
