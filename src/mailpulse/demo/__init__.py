"""The `mailpulse demo` parts: a capture SMTP inbox with web pages, and shop visitor traffic."""

from mailpulse.demo.inbox import CapturedMessage, CaptureInbox
from mailpulse.demo.inbox_web import inbox_router
from mailpulse.demo.traffic import TrafficGenerator

__all__ = ["CaptureInbox", "CapturedMessage", "TrafficGenerator", "inbox_router"]
