from tests.dns_server import dns_server

from .peers import certificate, scripted, smtp_server

__all__ = ["certificate", "dns_server", "scripted", "smtp_server"]
