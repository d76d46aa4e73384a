"""Delivery: MIME build, DKIM signing and the SMTP client that sends through a relay."""

from mailpulse.delivery.dkim import DkimSigner, dns_txt_record, generate_rsa_key
from mailpulse.delivery.mime import build_message, make_message_id
from mailpulse.delivery.smtp import OpenTransaction, SmtpRelay

__all__ = [
    "DkimSigner",
    "OpenTransaction",
    "SmtpRelay",
    "build_message",
    "dns_txt_record",
    "generate_rsa_key",
    "make_message_id",
]
