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
from mailpulse.policy.suppression import SuppressionIndex, address_hash, blocking, describe

__all__ = [
    "ALLOW",
    "NO_POLICY",
    "FrequencyCap",
    "QuietHours",
    "SendPolicy",
    "SuppressionIndex",
    "Verdict",
    "address_hash",
    "blocking",
    "check_send",
    "describe",
    "remember_marketing",
]
