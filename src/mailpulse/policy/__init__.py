"""Send policy: who may receive what, and when."""

from mailpulse.policy.gate import (
    ALLOW,
    NO_POLICY,
    FrequencyCap,
    QuietHours,
    SendPolicy,
    Verdict,
    check_send,
    remember_marketing,
)

__all__ = [
    "ALLOW",
    "NO_POLICY",
    "FrequencyCap",
    "QuietHours",
    "SendPolicy",
    "Verdict",
    "check_send",
    "remember_marketing",
]
