"""Partitioned bus between pipeline stages."""

from mailpulse.bus.interface import Bus, partition_of
from mailpulse.bus.memory import InProcessBus

__all__ = ["Bus", "InProcessBus", "partition_of"]
