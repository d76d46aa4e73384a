"""HTTP assembly: routes, auth, error shapes."""

from mailpulse.api.app import create_app

__all__ = ["create_app"]
