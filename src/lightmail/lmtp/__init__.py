"""LMTP (RFC 2033): mail delivery into the store.

``wire`` is the sans-I/O layer: bytes in, typed commands and DATA chunks out;
``Reply`` values to bytes. Import from that module.
"""
