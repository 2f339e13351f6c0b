"""What SORT and THREAD compare (RFC 5256, RFC 5957), derived once at delivery.

- `base_subject`: the base subject of RFC 5256 section 2.1, and whether a
  reply or forward marker was removed (the REFERENCES algorithm asks).
- `casemap`: the i;unicode-casemap collation (RFC 5051), which RFC 5256
  section 7 requires: each string is stored in its "titlecased canonicalized"
  form, so that SORT compares stored keys code point by code point (the same
  order as i;octet on their UTF-8) and THREAD compares them for equality.
- `message_ids`: msg-ids (RFC 5322 section 3.6.4) normalized as RFC 5256
  section BASE.6.4.THREAD demands (quoting removed), for Message-ID,
  References and In-Reply-To.
- `sort_keys`: all of the above for one message, from its ENVELOPE and header
  fields.

Choices where the RFCs leave room: a msg-id longer than 998 characters (the
line limit of RFC 5322 section 2.1.1) or with white space in it after quoting
is removed is not a valid Message ID; at most `MAX_REFERENCES` references are
kept, the last ones (a message's nearest ancestors).

Every function here takes any text and never raises; the work is linear in
the input, also for hostile subjects (nested blobs, endless ``Re:`` runs).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from lightmail.mailstore.mime.headers import (
    Fields,
    as_ntext,
    comment_end,
    first_field,
    quoted,
)
from lightmail.mailstore.mime.types import AddressList, Envelope, SortKeys
from lightmail.mailstore.mime.words import decode_words

__all__ = ["MAX_REFERENCES", "base_subject", "casemap", "message_ids", "sort_keys"]

MAX_REFERENCES = 100
"""References kept per message: the last ones."""
_MAX_MSG_ID = 998

# RFC 5256 section 5 (WSP is a single SP after step 1).
_BLOB = r"\[[^\[\]]*\] *"
_BLOBS = re.compile(f"(?:{_BLOB})*")
_ONE_BLOB = re.compile(_BLOB)
_REFWD = re.compile(f"(?:re|fwd?) *(?:{_BLOB})?:", re.ASCII | re.IGNORECASE)
_WHITE = re.compile(r"[ \t\r\n]+")


def base_subject(subject: str) -> tuple[str, bool]:
    """The base subject of a decoded Subject (RFC 5256 section 2.1), and whether
    the extraction removed a subj-refwd, a ``(fwd)`` trailer or a subj-fwd-hdr
    and subj-fwd-trl: whether the message is a reply or forward.

    Step (1)'s RFC 2047 decoding is the caller's (``ParsedMessage.subject`` is
    decoded). Works on positions, not copies, so hostile subjects stay linear.
    """
    text = _WHITE.sub(" ", subject)
    start, end = 0, len(text)
    reply = False
    while True:
        # (2) trailers: "(fwd)" or WSP, until none is left.
        while end > start:
            if text[end - 1] == " ":
                end -= 1
            elif end - start >= 5 and text[end - 5 : end].lower() == "(fwd)":
                end -= 5
                reply = True
            else:
                break
        # (3) and (4), repeated (5). The run of blobs at the front, and whether a
        # subj-refwd follows it, are found once and reused while (4) removes
        # the run's blobs one by one.
        blobs_end = -1
        leader_end: int | None = None
        while start < end:
            if text[start] == " ":
                start += 1
                continue
            if blobs_end < start:
                run = _BLOBS.match(text, start, end)
                blobs_end = start if run is None else run.end()
                leader = _REFWD.match(text, blobs_end, end)
                leader_end = None if leader is None else leader.end()
            if leader_end is not None:
                start = leader_end
                reply = True
                blobs_end = -1
                continue
            blob = _ONE_BLOB.match(text, start, end)
            if blob is not None and blob.end() < end:
                start = blob.end()
                continue
            break
        # (6) "[fwd:" ... "]": remove both and go again from (2).
        if end - start >= 6 and text[start : start + 5].lower() == "[fwd:" and text[end - 1] == "]":
            start += 5
            end -= 1
            reply = True
            continue
        return text[start:end], reply


def casemap(text: str) -> str:
    """`text` as i;unicode-casemap compares it (RFC 5051 section 2): each
    character replaced by its simple titlecase mapping, then by its
    decomposition (canonical or compatibility), repeatedly."""
    if text.isascii():
        return text.upper()  # ASCII titlecase is upper case; nothing decomposes
    return "".join(_casemap_char(char) for char in text)


@functools.lru_cache(maxsize=8192)
def _casemap_char(char: str) -> str:
    title = char.title()
    if len(title) != 1:  # a full (SpecialCasing) mapping only: no simple one
        title = char
    decomposition = unicodedata.decomposition(title).split()
    if decomposition and decomposition[0].startswith("<"):
        decomposition = decomposition[1:]  # the compatibility tag
    if not decomposition:
        return title
    return "".join(_casemap_char(chr(int(code, 16))) for code in decomposition)


def message_ids(value: str | None) -> list[str]:
    """The valid msg-ids of a field, in order, normalized: without angle
    brackets, comments, folding white space and quoting, so that
    ``<"a.b"@host>`` and ``<a.b@host>`` are one Message ID. Compared
    case-sensitively (RFC 5256)."""
    if not value:
        return []
    found: list[str] = []
    pos, n = 0, len(value)
    while pos < n:
        char = value[pos]
        if char == "(":
            pos = comment_end(value, pos)
        elif char == '"':
            pos = quoted(value, pos)[1]
        elif char == "<":
            msg_id, pos = _msg_id(value, pos + 1)
            if msg_id is not None:
                found.append(msg_id)
        else:
            pos += 1
    return found


def _msg_id(text: str, pos: int) -> tuple[str | None, int]:
    """The normalized msg-id whose ``<`` is just before `pos`, and where it ends."""
    out: list[str] = []
    n = len(text)
    while pos < n:
        char = text[pos]
        if char == ">":
            pos += 1
            break
        if char == "<":
            return None, pos  # not closed: the next "<" starts afresh
        if char == "(":
            pos = comment_end(text, pos)
        elif char == '"':
            inner, pos = quoted(text, pos)
            out.append(inner)
        elif char in " \t\r\n":
            pos += 1
        else:
            out.append(char)
            pos += 1
    else:
        return None, n
    msg_id = "".join(out)
    left, at, right = msg_id.rpartition("@")
    if not (at and left and right) or len(msg_id) > _MAX_MSG_ID or _WHITE.search(msg_id):
        return None, pos
    return msg_id, pos


def _mailbox(addresses: AddressList) -> str:
    """addr-mailbox of the first address (RFC 5256 FROM, TO, CC), "" for none."""
    if not addresses:
        return ""
    return addresses[0].mailbox or ""


def _display(addresses: AddressList) -> str:
    """The DISPLAY sort value of the first address (RFC 5957 sections 3 and 4)."""
    if not addresses:
        return ""
    first = addresses[0]
    if first.name is not None:
        name = decode_words(first.name)
        if name:
            return name
    if first.mailbox is not None and first.host is not None:
        return f"{first.mailbox}@{first.host}"
    return first.mailbox or ""


def sort_keys(envelope: Envelope, fields: Fields) -> SortKeys:
    """The SORT and THREAD keys of a message from its ENVELOPE and the fields of its
    header block (:func:`~lightmail.mailstore.mime.headers.header_fields`).

    References come from the References field, else the first valid msg-id of
    In-Reply-To (RFC 5256, REFERENCES).
    """
    subject, reply = base_subject(decode_words(envelope.subject or ""))
    own = message_ids(envelope.message_id)
    references = message_ids(as_ntext(first_field(fields, "references")))
    if not references:
        references = message_ids(envelope.in_reply_to)[:1]
    return SortKeys(
        subject=casemap(subject),
        reply=reply,
        from_=casemap(_mailbox(envelope.from_)),
        to=casemap(_mailbox(envelope.to)),
        cc=casemap(_mailbox(envelope.cc)),
        display_from=casemap(_display(envelope.from_)),
        display_to=casemap(_display(envelope.to)),
        message_id=own[0] if own else "",
        references=tuple(references[-MAX_REFERENCES:]),
    )
