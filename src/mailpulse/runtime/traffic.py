"""What decides when a send may go, shared by every partition one process runs: its
destination's rule (rate and connections) and the resolver that finds MX rules' destinations."""

from __future__ import annotations

from dataclasses import dataclass

from mailpulse.delivery.shaping import ConnectionLimits, Destinations, RateLimiter


@dataclass
class Traffic:
    destinations: Destinations
    limiter: RateLimiter
    connections: ConnectionLimits

    def unhindered(self, address: str) -> bool:
        """Whether a send to `address` may go at once: no rule limits it, known without a
        look-up."""
        known, destination = self.destinations.known(address)
        return known and destination is None
