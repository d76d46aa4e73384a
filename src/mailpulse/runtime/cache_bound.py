"""How many contacts the fold keeps in memory: few, unless people keep coming back.

A broadcast touches each recipient two or three times within seconds and never again, so
keeping more of them only holds memory (a contact takes ~1.6 KB of heap). A site's active
users come back again and again, and a bound below their number makes nearly every event read
its contact from the store: 50,000 users cycling through 5,000 places never hit at all
(ingestion fell from 47,000 to 29,000 events/s when the bound was cut to 5,000).

So the bound starts at `least` and grows towards `most` by the contacts that come back, by
events of their own, after being dropped, while they are more than half of those read back
for their own events. (Only their own: a broadcast right after an import reads back every
recipient the import dropped, which says nothing of who will come back.) Which contacts were
dropped lately is kept as bits, in two generations of a bitmap, not as ids: a broadcast drops
a million of them. A bit can be set by another id (a false positive, a few in a hundred).
"""

from __future__ import annotations

from collections.abc import Iterable

_BITS = 1 << 22  # per generation: 512 KB; with `most` ids in it, ~2.4 % false positives
_SHARE = 2  # grows when more than one in this many contacts read back had been dropped
_SEEN_ENOUGH = 512  # contacts read back before their share says anything


class CacheBound:
    def __init__(self, least: int, most: int) -> None:
        if not 0 < least <= most:
            raise ValueError(f"a cache bound needs 0 < least <= most, not {least}, {most}")
        self.size = least
        self._most = most
        self._young = bytearray(_BITS // 8)
        self._old = bytearray(_BITS // 8)
        self._in_young = 0
        self._read = self._returned = 0  # since the share was last judged

    def dropped(self, ids: Iterable[str]) -> None:
        young = self._young
        for cid in ids:
            bit = hash(cid) & (_BITS - 1)
            young[bit >> 3] |= 1 << (bit & 7)
            self._in_young += 1
            if self._in_young >= self._most:
                # The oldest generation is forgotten: what came back after this long did not
                # come back soon enough to be worth a place.
                self._old, self._young = young, bytearray(_BITS // 8)
                young = self._young
                self._in_young = 0

    def read_back(self, ids: Iterable[str]) -> None:
        """Contacts the fold had to read from the store for events of their own."""
        for cid in ids:
            self._read += 1
            bit = hash(cid) & (_BITS - 1)
            byte, mask = bit >> 3, 1 << (bit & 7)
            if self._young[byte] & mask or self._old[byte] & mask:
                self._returned += 1
        if self._read < _SEEN_ENOUGH:
            return
        if self._returned * _SHARE > self._read:
            self.size = min(self._most, self.size + self._returned)
        self._read = self._returned = 0
