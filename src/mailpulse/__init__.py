"""mailpulse: real-time email from Segment events."""

__version__ = "0.1.0"
