"""Virus scanning of incoming mail through clamd (see :mod:`lightmail.antivirus.clamd`)."""

from __future__ import annotations

from lightmail.antivirus.clamd import ClamdClient, ClamdScan, Verdict

__all__ = ["ClamdClient", "ClamdScan", "Verdict"]
