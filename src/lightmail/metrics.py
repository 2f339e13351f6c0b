"""Prometheus metrics of a node (served at /metrics by the HTTP API).

One module so every metric name is defined once; the code that counts
imports the metric it needs.
"""

from __future__ import annotations

from prometheus_client import Counter

ANTIVIRUS_VERDICTS = Counter(
    "lightmail_antivirus_verdicts",
    "Virus scans by outcome: clean, infected, or error (clamd unavailable or slow).",
    ["verdict"],
)
LMTP_RECIPIENTS = Counter(
    "lightmail_lmtp_recipients",
    "LMTP recipients by the reply they got after DATA: delivered, refused, deferred.",
    ["outcome"],
)
