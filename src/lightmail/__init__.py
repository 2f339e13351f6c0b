"""LightMail: a mail store server (LMTP in; IMAP and POP3 out; SQL and object storage)."""

from importlib.metadata import version

__version__ = version("lightmail")
