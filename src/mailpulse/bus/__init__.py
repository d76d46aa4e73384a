"""Partitioned bus between pipeline stages."""

from mailpulse.bus.interface import Bus, BusUnavailable, partition_of
from mailpulse.bus.memory import InProcessBus

__all__ = ["Bus", "BusUnavailable", "InProcessBus", "partition_of"]
