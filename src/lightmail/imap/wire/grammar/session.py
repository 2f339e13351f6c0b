"""Commands of any state and of Not Authenticated (RFC 3501 sections 6.1 and 6.2).

AUTHENTICATE with SASL-IR (RFC 4959), LOGIN, ID (RFC 2971), ENABLE
(RFC 5161) and COMPRESS (RFC 4978); the commands without arguments are in the
table.
"""

from __future__ import annotations

import re

from lightmail.imap.wire.commands import (
    AuthenticateCommand,
    Command,
    CompressCommand,
    EnableCommand,
    IdCommand,
    LoginCommand,
)
from lightmail.imap.wire.parser import ParseError, Parser

__all__ = ["authenticate", "compress", "enable", "id_", "login"]

_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def authenticate(p: Parser, tag: bytes, uid: bool) -> Command:
    """AUTHENTICATE (section 6.2.2) with an optional initial response (RFC 4959)."""
    p.sp()
    mechanism = p.atom().upper().decode("ascii")
    initial: bytes | None = None
    if p.at(b" "):
        p.sp()
        initial = p.take1(_BASE64_CHARS, "base64 or =")
        if initial == b"=":
            initial = b""
        elif _BASE64.fullmatch(initial) is None:
            raise ParseError("invalid base64")
    p.end()
    return AuthenticateCommand(tag, mechanism, initial)


def login(p: Parser, tag: bytes, uid: bool) -> Command:
    """``LOGIN userid password`` (section 6.2.3)."""
    userid, password = p.two(p.astring, p.astring)
    return LoginCommand(tag, userid, password)


def id_(p: Parser, tag: bytes, uid: bool) -> Command:
    """``ID (name value ...)`` or ``ID NIL`` (RFC 2971 section 3.1)."""
    p.sp()
    params: tuple[tuple[bytes, bytes | None], ...] | None = None
    if p.at(b"("):
        p.open_list()
        pairs: list[tuple[bytes, bytes | None]] = []
        while not p.close_list():
            if pairs:
                p.list_separator()
            name = p.string()
            p.sp()
            pairs.append((name, p.nstring()))
        params = tuple(pairs)
    elif p.word("NIL") != b"NIL":
        raise ParseError('expected "(" or NIL')
    p.end()
    return IdCommand(tag, params)


def enable(p: Parser, tag: bytes, uid: bool) -> Command:
    """``ENABLE capability ...`` (RFC 5161 section 3.1)."""
    capabilities: list[str] = []
    while True:
        p.sp()
        capabilities.append(p.atom().upper().decode("ascii"))
        if not p.at(b" "):
            break
    p.end()
    return EnableCommand(tag, tuple(capabilities))


def compress(p: Parser, tag: bytes, uid: bool) -> Command:
    """``COMPRESS DEFLATE`` (RFC 4978 section 3): any other algorithm is BAD."""
    p.sp()
    if p.atom().upper() != b"DEFLATE":
        raise ParseError("unknown compression algorithm")
    p.end()
    return CompressCommand(tag)
