"""What decides when a send may go, shared by every partition one process runs: its
destination's rule (rate and connections), the resolver that finds MX rules' destinations,
and the project's limits over all sends (a rate, quotas)."""

from __future__ import annotations

from dataclasses import dataclass

from mailpulse.delivery.limits import Quotas
from mailpulse.delivery.shaping import ConnectionLimits, Destination, Destinations, RateLimiter


@dataclass
class Traffic:
    destinations: Destinations
    limiter: RateLimiter
    connections: ConnectionLimits
    quotas: Quotas
    # `[delivery.limits] rate`: one timeline every send takes a turn on, after its own.
    global_rate: Destination | None = None

    def unhindered(self, address: str) -> bool:
        """Whether a send to `address` may go at once: no rule or limit holds it, known
        without a look-up."""
        if self.global_rate is not None or self.quotas.quotas:
            return False
        known, destination = self.destinations.known(address)
        return known and destination is None
