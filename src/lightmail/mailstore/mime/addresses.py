"""Address fields (RFC 5322 section 3.4) as ENVELOPE address structures (RFC 3501
section 7.4.2), the ENVELOPE itself, and the address text SEARCH and SORT use.

Missing host names become ``.MISSING-HOST-NAME.`` (the UW IMAP convention clients
know), as NIL would mean group syntax. At most 1000 addresses are kept per field.
"""

from __future__ import annotations

import re

from lightmail.mailstore.mime.headers import (
    QUOTED_PAIR,
    Fields,
    as_ntext,
    as_text,
    comment_end,
    first_field,
    header_fields,
    quoted,
)
from lightmail.mailstore.mime.types import Address, AddressList, Envelope
from lightmail.mailstore.mime.words import decode_words

MISSING_HOST = ".MISSING-HOST-NAME."
"""Host name put in an address that has none (UW IMAP's convention)."""

_MAX_ADDRESSES = 1000
_ADDRESS_ATOM = re.compile(r"[^\s()<>\[\]:;@\\,\"]+")
_SPACE = re.compile(r"[ \t\r\n]+")


def _address_tokens(value: str) -> list[tuple[str, str]]:
    """Tokens: ("a", atom), ("q", quoted content), ("d", domain literal),
    ("c", comment text) and specials as (char, char). Dots stay inside atoms."""
    tokens: list[tuple[str, str]] = []
    pos, n = 0, len(value)
    while pos < n:
        char = value[pos]
        if char in " \t\r\n":
            space = _SPACE.match(value, pos)
            pos = n if space is None else space.end()
        elif char == '"':
            text, pos = quoted(value, pos)
            tokens.append(("q", text))
        elif char == "(":
            end = comment_end(value, pos)
            inner = value[pos + 1 : end - 1 if value[end - 1] == ")" else end]
            tokens.append(("c", QUOTED_PAIR.sub(r"\1", inner).strip()))
            pos = end
        elif char == "[":
            close = value.find("]", pos)
            end = n if close < 0 else close + 1
            tokens.append(("d", value[pos:end]))
            pos = end
        elif char in "<>:;@,":
            tokens.append((char, char))
            pos += 1
        elif char in ")]\\":
            pos += 1
        else:
            atom = _ADDRESS_ATOM.match(value, pos)
            end = pos + 1 if atom is None else atom.end()
            tokens.append(("a", value[pos:end]))
            pos = end
    return tokens


def _mailbox_address(
    name_words: list[str],
    comments: list[str],
    tokens: list[tuple[str, str]],
    *,
    comment_names: bool = True,
) -> Address | None:
    """An address from a display name and the tokens of an addr-spec or route-addr.

    Without a display name, the comments become the name (as UW IMAP does in
    ENVELOPE) unless ``comment_names`` is false.
    """
    adl = None
    if tokens and tokens[0][0] == "@":
        colon = next((i for i, token in enumerate(tokens) if token[0] == ":"), -1)
        if colon >= 0:
            adl = "".join(text for kind, text in tokens[:colon] if kind != "c")
            tokens = tokens[colon + 1 :]
    at = max((i for i, token in enumerate(tokens) if token[0] == "@"), default=-1)
    local_tokens = tokens if at < 0 else tokens[:at]
    domain_tokens = [] if at < 0 else tokens[at + 1 :]
    comments = comments + [text for kind, text in tokens if kind == "c"]
    local = "".join(text for kind, text in local_tokens if kind in "aqd")
    domain = "".join(text for kind, text in domain_tokens if kind in "ad")
    name = " ".join(name_words)
    if not name and comment_names:
        name = " ".join(comment for comment in comments if comment)
    if not local and not domain and not name:
        return None
    return Address(
        as_text(name) if name else None,
        None if adl is None else as_text(adl),
        as_text(local),
        as_text(domain) if domain else MISSING_HOST,
    )


def parse_addresses(value: str | None, *, comment_names: bool = True) -> AddressList:
    """An address-list field as ENVELOPE address structures, groups marked.

    ``comment_names``: see `_mailbox_address`.
    """
    if value is None:
        return None
    tokens = _address_tokens(value)
    out: list[Address] = []
    in_group = False
    pos, n = 0, len(tokens)
    while pos < n and len(out) < _MAX_ADDRESSES:
        kind = tokens[pos][0]
        if kind in ",>":
            pos += 1
            continue
        if kind == ";":
            if in_group:
                out.append(Address(None, None, None, None))
                in_group = False
            pos += 1
            continue
        words: list[str] = []
        comments: list[str] = []
        end = pos
        while end < n and tokens[end][0] in "aqdc":
            is_comment = tokens[end][0] == "c"
            (comments if is_comment else words).append(tokens[end][1])
            end += 1
        following = tokens[end][0] if end < n else ""
        if following == ":" and not in_group:
            out.append(Address(None, None, as_text(" ".join(words)), None))
            in_group = True
            pos = end + 1
            continue
        if following == "<":
            close = end + 1
            while close < n and tokens[close][0] != ">":
                close += 1
            address = _mailbox_address(
                words, comments, tokens[end + 1 : close], comment_names=comment_names
            )
            pos = close + 1
        elif following == "@":
            stop = end + 1
            while stop < n and tokens[stop][0] in "aqdc.":
                stop += 1
            address = _mailbox_address([], [], tokens[pos:stop], comment_names=comment_names)
            pos = stop
        else:
            address = (
                _mailbox_address([], comments, tokens[pos:end], comment_names=comment_names)
                if words
                else None
            )
            pos = max(end, pos + 1) if following not in ("", ",", ";") else end
        if address is not None:
            out.append(address)
    if in_group:
        out.append(Address(None, None, None, None))
    return tuple(out) or None


def _address_text(address: Address) -> str:
    """One mailbox as text: ``display name <mailbox@host>`` or ``mailbox@host``, the
    name RFC 2047-decoded and a missing host left out."""
    mailbox = address.mailbox or ""
    spec = mailbox if address.host in (None, MISSING_HOST) else f"{mailbox}@{address.host}"
    return f"{decode_words(address.name)} <{spec}>" if address.name else spec


def display(addresses: AddressList) -> str:
    """Decoded text of an address list, e.g. ``Jörg Müller <joerg@example.org>, b@x``."""
    if not addresses:
        return ""
    items: list[str] = []
    group: list[str] | None = None
    group_name = ""
    for address in addresses:
        if address.is_group_start:
            group, group_name = [], decode_words(address.mailbox or "")
            continue
        if address.is_group_end:
            if group is not None:
                items.append(_display_group(group_name, group))
            group = None
            continue
        (items if group is None else group).append(_address_text(address))
    if group is not None:
        items.append(_display_group(group_name, group))
    return ", ".join(items)


_ADDRESS_FIELDS = ("from", "to", "cc", "bcc")


def search_addresses(header: bytes) -> dict[str, tuple[str, ...]]:
    """The addresses of the From, To, Cc and Bcc fields of a header block, as SEARCH
    matches them (RFC 3501 section 6.4.4 FROM, TO, CC, BCC).

    Keyed by lower-case field name, present when the header has that field. Each
    address is one item, ``display name <mailbox@host>`` or ``mailbox@host``: parsed
    as ENVELOPE parses it (RFC 5322 section 3.4: folding and comments removed,
    quoted strings unquoted), the display name RFC 2047-decoded, a comment never
    taken for a name. A group's name is an item of its own. Works on any stored
    header block, so messages stored before this existed are searched the same way.
    """
    found: dict[str, list[str]] = {}
    for name, value in header_fields(header):
        if name not in _ADDRESS_FIELDS:
            continue
        items = found.setdefault(name, [])
        for address in parse_addresses(value, comment_names=False) or ():
            if address.is_group_end:
                continue
            if address.is_group_start:
                items.append(decode_words(address.mailbox or ""))
                continue
            items.append(_address_text(address))
    return {name: tuple(items) for name, items in found.items()}


def _display_group(name: str, members: list[str]) -> str:
    return f"{name}: {', '.join(members)};" if members else f"{name}:;"


def parse_envelope(fields: Fields) -> Envelope:
    """ENVELOPE from a message header (RFC 3501 section 7.4.2's defaulting rules)."""
    from_ = parse_addresses(first_field(fields, "from"))
    return Envelope(
        date=as_ntext(first_field(fields, "date")),
        subject=as_ntext(first_field(fields, "subject")),
        from_=from_,
        sender=parse_addresses(first_field(fields, "sender")) or from_,
        reply_to=parse_addresses(first_field(fields, "reply-to")) or from_,
        to=parse_addresses(first_field(fields, "to")),
        cc=parse_addresses(first_field(fields, "cc")),
        bcc=parse_addresses(first_field(fields, "bcc")),
        in_reply_to=as_ntext(first_field(fields, "in-reply-to")),
        message_id=as_ntext(first_field(fields, "message-id")),
    )
