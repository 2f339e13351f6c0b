"""POP3 (RFC 1939, RFC 2449, RFC 5034, RFC 2595): reading mail out of the store.

``wire`` is the sans-I/O layer: bytes in, typed commands and SASL responses
out; ``Pop3Reply`` helpers, ``DotStuffer`` and ``TopFilter`` to bytes. Import
from that module.
"""
