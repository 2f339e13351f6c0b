"""Modified UTF-7 for mailbox names (RFC 3501 section 5.1.3).

Printable US-ASCII (0x20-0x7E) stands for itself, except ``&`` which is
``&-``; every other run of characters is ``&``, the modified base64 of its
UTF-16BE form (``,`` for ``/``, no padding), ``-``.

``decode`` is strict: it accepts only what ``encode`` produces (the canonical
form: no encoded printable ASCII, no adjacent shifted runs, no stray bits),
so one name has one spelling on the wire and in the store.

``decode_pattern`` is for LIST and LSUB arguments, which are patterns, not
names: it never fails (RFC 3501 sections 6.3.8 and 5.1.3).
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode", "decode_pattern", "encode"]

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def _is_direct(code: int) -> bool:
    return 0x20 <= code <= 0x7E


def _shift(run: list[str]) -> bytes:
    data = "".join(run).encode("utf-16-be")  # lone surrogates raise UnicodeEncodeError
    return b"&" + base64.b64encode(data).rstrip(b"=").replace(b"/", b",") + b"-"


def encode(name: str) -> bytes:
    """``name`` in modified UTF-7; ``ValueError`` if it holds a lone surrogate."""
    out = bytearray()
    run: list[str] = []
    for ch in name:
        if _is_direct(ord(ch)):
            if run:
                out += _shift(run)
                run = []
            out += b"&-" if ch == "&" else ch.encode("ascii")
        else:
            run.append(ch)
    if run:
        out += _shift(run)
    return bytes(out)


def decode(raw: bytes) -> str:
    """The name ``raw`` spells; ``ValueError`` if it is not canonical modified UTF-7."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if not _is_direct(c):
            raise ValueError("mailbox name has an octet outside printable US-ASCII")
        if c != ord("&"):
            out.append(chr(c))
            i += 1
            continue
        end = raw.find(b"-", i + 1)
        if end < 0:
            raise ValueError("unterminated & sequence in mailbox name")
        encoded = raw[i + 1 : end]
        i = end + 1
        if not encoded:
            out.append("&")
            continue
        if not _B64_ALPHABET.issuperset(encoded) or len(encoded) % 4 == 1:
            raise ValueError("invalid modified base64 in mailbox name")
        padded = encoded.replace(b",", b"/") + b"=" * (-len(encoded) % 4)
        try:
            data = base64.b64decode(padded, validate=True)
            if len(data) % 2:
                raise ValueError("odd number of UTF-16 octets")
            out.append(data.decode("utf-16-be"))
        except (binascii.Error, ValueError) as e:
            raise ValueError("invalid UTF-16 in mailbox name") from e
    name = "".join(out)
    if encode(name) != raw:
        raise ValueError("mailbox name is not in canonical modified UTF-7")
    return name


def decode_pattern(raw: bytes) -> str:
    """A LIST or LSUB reference or pattern: what ``decode`` gives where ``raw`` is
    modified UTF-7, and never ``ValueError``.

    Where it is not, each shifted run that ``decode`` accepts on its own is
    still decoded; every other octet stands for itself: a bare ``&`` is ``&``,
    and octets outside printable US-ASCII are read as UTF-8, with lone
    surrogates (``surrogateescape``) for what is not UTF-8, which no mailbox
    name contains. Such a pattern is matched as it reads and usually matches
    nothing.
    """
    try:
        return decode(raw)
    except ValueError:
        pass
    out: list[str] = []
    plain = 0  # start of the octets not yet decoded
    i = raw.find(b"&")
    while i >= 0:
        end = raw.find(b"-", i + 1)
        if end < 0:
            break
        try:
            run = decode(raw[i : end + 1])
        except ValueError:
            i = raw.find(b"&", i + 1)
            continue
        out.append(raw[plain:i].decode("utf-8", "surrogateescape"))
        out.append(run)
        plain = end + 1
        i = raw.find(b"&", plain)
    out.append(raw[plain:].decode("utf-8", "surrogateescape"))
    return "".join(out)
