"""Charsets and RFC 2047 encoded words, decoded leniently for search and display."""

from __future__ import annotations

import binascii
import encodings
import encodings.aliases
import pkgutil
import re

_NOT_CHARSETS = frozenset(
    {
        "aliases",
        "base64_codec",
        "bz2_codec",
        "charmap",
        "hex_codec",
        "idna",
        "mbcs",
        "oem",
        "punycode",
        "quopri_codec",
        "raw_unicode_escape",
        "rot_13",
        "undefined",
        "unicode_escape",
        "uu_codec",
        "zlib_codec",
    }
)
_CODECS = frozenset(module.name for module in pkgutil.iter_modules(encodings.__path__))
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?\s]*)\?=")


def _codec(charset: str) -> str:
    """A Python codec for a MIME charset name, or utf-8.

    Only names from the stdlib's own list are looked up, so hostile charset names
    neither reach non-text codecs nor grow the codec registry's cache.
    """
    name = encodings.normalize_encoding(charset.strip().lower()[:64])
    for candidate in (name, name.replace(".", "_")):
        canonical = encodings.aliases.aliases.get(candidate, candidate)
        if canonical in _CODECS and canonical not in _NOT_CHARSETS:
            return canonical
    return "utf_8"


def decode_octets(raw: bytes, charset: str) -> str:
    """`raw` in MIME charset `charset` (utf-8 if unknown) as text; NUL and bad octets
    become U+FFFD."""
    try:
        text = raw.decode(_codec(charset), "replace")
    except (LookupError, UnicodeError, ValueError):
        text = raw.decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _word_octets(encoding: str, payload: str) -> bytes | None:
    """The octets of one encoded word's text (RFC 2047 section 4); None if broken."""
    try:
        if encoding in "bB":
            data = payload.rstrip("=")
            return binascii.a2b_base64((data + "=" * (-len(data) % 4)).encode("ascii"))
        return binascii.a2b_qp(payload.encode("utf-8"), header=True)
    except (binascii.Error, ValueError, UnicodeError):
        return None


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words, leniently (RFC 2047 section 6).

    White space between adjacent encoded words is dropped (section 6.2); adjacent
    words in one charset are joined before decoding, so a character split across
    words survives. Broken words are left as they are.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    pending = b""
    pending_charset = ""
    pos = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        octets = _word_octets(match.group(2), match.group(3))
        pos = match.end()
        if octets is None:
            if pending:
                out.append(decode_octets(pending, pending_charset))
                pending = b""
            out.append(gap + match.group(0))
            after_word = False
            continue
        charset = match.group(1).split("*", 1)[0]
        if not (after_word and gap.strip(" \t\r\n") == ""):
            if pending:
                out.append(decode_octets(pending, pending_charset))
                pending = b""
            out.append(gap)
        elif pending and charset.lower() != pending_charset.lower():
            out.append(decode_octets(pending, pending_charset))
            pending = b""
        pending += octets
        pending_charset = charset
        after_word = True
    if pending:
        out.append(decode_octets(pending, pending_charset))
    out.append(text[pos:])
    return "".join(out)
