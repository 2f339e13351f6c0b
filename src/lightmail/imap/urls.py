"""IMAP URLs (RFC 5092) as CATENATE uses them (RFC 4469 section 3), sans-I/O.

A CATENATE ``URL`` names a message or a part of one that the session's own
user can read on this server. Two forms are taken:

- an absolute path, ``/INBOX;UIDVALIDITY=x/;UID=y/;SECTION=z/;PARTIAL=o.n``,
  relative to ``imap://user@server/`` (RFC 4469 section 3);
- an absolute URL, ``imap://user@host/...``, whose user must be the session's
  (the host is not checked: a client names this server by whatever name it
  reached it under);

and, in the Selected state, ``;UID=y...`` for a message of the selected
mailbox. ``;UIDVALIDITY`` and ``;SECTION`` and ``;PARTIAL`` are optional
(``;PARTIAL=o`` alone is to the end); ``;URLAUTH``, ``;EXPIRE``, searches and
anything else are refused, as is anything not a message (RFC 4469: a server
of this RFC alone answers those NO). `parse_url` raises `BadUrl`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from lightmail.imap.wire.grammar.fetch import section_spec
from lightmail.imap.wire.parser import ParseError
from lightmail.imap.wire.types import BodySection

__all__ = ["BadUrl", "MessageUrl", "badurl_text", "parse_url"]

_ABSOLUTE = re.compile(r"imap://(?:([^@/;]*)(?:;AUTH=[^@/]*)?@)?[^/]+(/.*)?\Z", re.IGNORECASE)
_MESSAGE = re.compile(
    r"(?P<mailbox>[^;]*)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})"
    r"(?:/;SECTION=(?P<section>[^/;]*))?"
    r"(?:/;PARTIAL=(?P<origin>[0-9]{1,10})(?:\.(?P<count>[1-9][0-9]{0,9}))?)?\Z",
    re.IGNORECASE,
)
_MAX_NUMBER = 0xFFFFFFFF


class BadUrl(Exception):
    """The URL cannot be used: answer ``NO [BADURL url]`` (RFC 4469 section 4.1)."""


@dataclass(frozen=True, slots=True)
class MessageUrl:
    """What a CATENATE URL names. ``mailbox`` None is the selected mailbox;
    ``user`` is the user of an absolute URL (to be the session's); ``section``
    is a ``BODY.PEEK[section]`` (``BodySection()`` the whole message) and
    ``partial`` its ``(origin, count)``, count None to the end."""

    mailbox: str | None
    uid: int
    uidvalidity: int | None = None
    user: str | None = None
    section: BodySection = field(default_factory=lambda: BodySection(peek=True))
    partial: tuple[int, int | None] | None = None


def parse_url(raw: bytes) -> MessageUrl:
    """An IMAP URL of a message or message part (see the module docstring)."""
    try:
        url = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadUrl("not an ASCII URL") from None
    user: str | None = None
    absolute = _ABSOLUTE.match(url)
    if absolute is not None:
        user = _text(absolute.group(1)) if absolute.group(1) else None
        path = absolute.group(2) or ""
        if not path.startswith("/"):
            raise BadUrl("no message in the URL")
        url = path
    if url.startswith("//") or not url.startswith(("/", ";")):
        raise BadUrl("not an IMAP message URL")
    relative = url.startswith(";")
    found = _MESSAGE.match("/" + url if relative else url[1:])
    if found is None:
        raise BadUrl("not an IMAP message URL")
    mailbox = found["mailbox"]
    if relative:
        mailbox_name = None
    elif mailbox:
        mailbox_name = _text(mailbox)
    else:
        raise BadUrl("no mailbox in the URL")
    if relative and found["uidvalidity"] is not None:
        raise BadUrl("not an IMAP message URL")
    numbers = [found[name] for name in ("uidvalidity", "uid", "origin", "count")]
    if any(number is not None and int(number) > _MAX_NUMBER for number in numbers):
        raise BadUrl("number out of range")
    section = BodySection(peek=True)
    if found["section"] is not None:
        try:
            section = section_spec(unquote_to_bytes(found["section"]))
        except ParseError:
            raise BadUrl("invalid section") from None
    partial: tuple[int, int | None] | None = None
    if found["origin"] is not None:
        count = found["count"]
        partial = (int(found["origin"]), None if count is None else int(count))
    uidvalidity = found["uidvalidity"]
    return MessageUrl(
        mailbox=mailbox_name,
        uid=int(found["uid"]),
        uidvalidity=None if uidvalidity is None else int(uidvalidity),
        user=user,
        section=section,
        partial=partial,
    )


def _text(escaped: str) -> str:
    """A %-escaped UTF-8 component (RFC 5092 section 3: mailbox names are UTF-8)."""
    try:
        return unquote_to_bytes(escaped).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("not UTF-8") from None


def badurl_text(raw: bytes) -> bytes:
    """The URL as ``BADURL``'s ``url-resp-text`` may hold it (RFC 4469 section 5:
    TEXT-CHAR but "]"): those octets %-escaped, at most 200 kept."""
    return re.sub(rb"[^\x01-\x09\x0b\x0c\x0e-\x5c\x5e-\x7e]", _escape, raw[:200]) or b"?"


def _escape(found: re.Match[bytes]) -> bytes:
    return b"%%%02X" % found.group()[0]
