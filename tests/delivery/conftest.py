from .peers import certificate, scripted, smtp_server

__all__ = ["certificate", "scripted", "smtp_server"]
