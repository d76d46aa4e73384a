"""Send policy: who may receive what, and when."""

from mailpulse.policy.gate import ALLOW, Verdict, check_send

__all__ = ["ALLOW", "Verdict", "check_send"]
