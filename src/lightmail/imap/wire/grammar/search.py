"""SEARCH (RFC 3501 section 6.4.4): CHARSET and the search keys; SORT and THREAD
(RFC 5256, RFC 5957), which take the same keys after their own arguments. SEARCH
and SORT take result options first (RFC 4466 ``search-return-opts``): ESEARCH's
(RFC 4731), PARTIAL (RFC 9394) and ESORT's (RFC 5267 section 3).

Nesting (parentheses, NOT, OR) is bounded by the parser's ``max_depth``; the
keys of one SEARCH by its ``max_keys``, each counted (a parenthesised list,
NOT and OR count as one more each), so that one command cannot ask for keys x
messages evaluations without bound. Quoted strings may hold 8-bit octets when
a CHARSET other than US-ASCII is named.
"""

from __future__ import annotations

from typing import Literal

from lightmail.imap.wire import types as t
from lightmail.imap.wire.commands import Command, SearchCommand, SortCommand, ThreadCommand
from lightmail.imap.wire.parser import ALPHA, DIGITS, MAX_NUMBER64, ParseError, Parser, Utf8

__all__ = ["search", "sort", "thread"]

_SEARCH_FLAGS: dict[bytes, tuple[bytes, bool]] = {
    b"ANSWERED": (b"\\Answered", True),
    b"DELETED": (b"\\Deleted", True),
    b"DRAFT": (b"\\Draft", True),
    b"FLAGGED": (b"\\Flagged", True),
    b"RECENT": (b"\\Recent", True),
    b"SEEN": (b"\\Seen", True),
    b"UNANSWERED": (b"\\Answered", False),
    b"UNDELETED": (b"\\Deleted", False),
    b"UNDRAFT": (b"\\Draft", False),
    b"UNFLAGGED": (b"\\Flagged", False),
    b"UNSEEN": (b"\\Seen", False),
}
_SEARCH_ADDRESSES = frozenset({b"BCC", b"CC", b"FROM", b"TO"})
_SEARCH_DATES: dict[bytes, tuple[Literal["before", "on", "since"], bool]] = {
    b"BEFORE": ("before", False),
    b"ON": ("on", False),
    b"SINCE": ("since", False),
    b"SENTBEFORE": ("before", True),
    b"SENTON": ("on", True),
    b"SENTSINCE": ("since", True),
}


def search(p: Parser, tag: bytes, uid: bool) -> Command:
    """``SEARCH [RETURN (option ...)] [CHARSET name] key ...``; several keys are ANDed."""
    p.sp()
    returns = _search_return(p, save=True)
    charset: str | None = None
    start = p.pos
    if p.take(ALPHA).upper() == b"CHARSET" and p.at(b" "):
        p.sp()
        charset = _charset(p, optional=True)
        p.sp()
    else:
        p.pos = start
    return SearchCommand(tag, uid, charset, _search_keys(p), returns)


def sort(p: Parser, tag: bytes, uid: bool) -> Command:
    """``SORT [RETURN (option ...)] (sort-criterion ...) charset key ...`` (RFC 5256
    section 5, with RFC 5957's DISPLAYFROM and DISPLAYTO and RFC 5267's
    ``extended-sort``)."""
    p.sp()
    returns = _search_return(p, save=False)
    criteria = p.parenthesized(lambda: _sort_criterion(p))
    p.sp()
    charset = _charset(p, optional=False)
    p.sp()
    return SortCommand(tag, uid, tuple(criteria), charset, _search_keys(p), returns)


def thread(p: Parser, tag: bytes, uid: bool) -> Command:
    """``THREAD thread-alg charset key ...`` (RFC 5256 section 5)."""
    p.sp()
    name = p.atom().upper()
    try:
        algorithm = t.ThreadAlgorithm(name.decode("ascii"))
    except ValueError:
        raise ParseError("unknown threading algorithm") from None
    p.sp()
    charset = _charset(p, optional=False)
    p.sp()
    return ThreadCommand(tag, uid, algorithm, charset, _search_keys(p))


_RESULT_OPTIONS = frozenset({b"MIN", b"MAX", b"ALL", b"COUNT"})


def _search_return(p: Parser, *, save: bool) -> t.SearchReturn | None:
    """``RETURN (search-return-opt ...) SP``, or None (nothing consumed) without it.
    ``RETURN ()`` is ALL (RFC 4731 section 3.1); each option comes at most once,
    and PARTIAL never with ALL (RFC 9394 section 3.1). SAVE (RFC 5182) only
    where ``save``: SEARCH's."""
    start = p.pos
    if p.take(ALPHA).upper() != b"RETURN" or not p.at(b" ("):
        p.pos = start
        return None
    p.sp()
    p.expect(b"(", '"("')
    options: set[str] = set()
    partial: t.PartialRange | None = None
    while not p.at(b")"):
        if options or partial is not None:
            p.sp()
        name = p.word("a result option")
        if name.decode("ascii") in options or (name == b"PARTIAL" and partial is not None):
            raise ParseError("result option given twice")
        if name == b"PARTIAL":
            p.sp()
            partial = p.partial_range()
        elif name in _RESULT_OPTIONS or (save and name == b"SAVE"):
            options.add(name.decode("ascii"))
        else:
            raise ParseError("unknown result option")
    p.pos += 1
    if partial is not None and "ALL" in options:
        raise ParseError("PARTIAL and ALL together")
    p.sp()
    if not options and partial is None:
        options.add("ALL")
    return t.SearchReturn(frozenset(options), partial)


def _charset(p: Parser, *, optional: bool) -> str:
    """A charset name, upper-case; quoted strings after it may hold 8-bit octets
    unless it is US-ASCII. After ENABLE UTF8=ACCEPT (RFC 9755 section 3) an
    ``optional`` one (SEARCH's) is refused and a mandatory one must be UTF-8;
    IMAP4rev2 keeps them (RFC 9051 section 6.4.4)."""
    try:
        charset = p.astring().decode("ascii").upper()
    except UnicodeDecodeError:
        raise ParseError("invalid charset name") from None
    if p.utf8 is Utf8.ACCEPT and optional:
        raise ParseError("no CHARSET after ENABLE UTF8=ACCEPT")
    if p.utf8 is Utf8.ACCEPT and charset != "UTF-8":
        raise ParseError("the charset must be UTF-8 after ENABLE UTF8=ACCEPT")
    p.eight_bit_quoted = p.utf8 is not Utf8.OFF or charset != "US-ASCII"
    return charset


def _sort_criterion(p: Parser) -> t.SortCriterion:
    name = p.word("a sort key")
    reverse = name == b"REVERSE"
    if reverse:
        p.sp()
        name = p.word("a sort key")
    try:
        return t.SortCriterion(t.SortKey(name.decode("ascii")), reverse)
    except ValueError:
        raise ParseError("unknown sort key") from None


def _search_keys(p: Parser) -> t.SearchKey:
    """One or more search keys to the end of the command; several are ANDed."""
    keys = [_search_key(p)]
    while p.at(b" "):
        p.sp()
        keys.append(_search_key(p))
    p.end()
    return keys[0] if len(keys) == 1 else t.AndKey(tuple(keys))


def _search_key(p: Parser) -> t.SearchKey:
    """One search key, counted against the depth and key budgets."""
    p.depth += 1
    if p.depth > p.max_depth:
        raise ParseError("search keys nested too deeply")
    p.keys += 1
    if p.max_keys is not None and p.keys > p.max_keys:
        raise ParseError(f"too many search keys (at most {p.max_keys})")
    key = _key(p)
    p.depth -= 1
    return key


def _key(p: Parser) -> t.SearchKey:
    c = p.peek()
    if c == ord("("):
        keys = p.parenthesized(lambda: _search_key(p))
        return keys[0] if len(keys) == 1 else t.AndKey(tuple(keys))
    if c is not None and (c in DIGITS or c in b"*$"):
        return t.SequenceKey(p.sequence_set(), uid=False)
    name = p.take1(ALPHA, "a search key").upper()
    if name == b"ALL":
        return t.AllKey()
    if name in _SEARCH_FLAGS:
        flag, present = _SEARCH_FLAGS[name]
        return t.FlagKey(flag, present)
    if name == b"NEW":
        return t.AndKey((t.FlagKey(b"\\Recent"), t.FlagKey(b"\\Seen", present=False)))
    if name == b"OLD":
        return t.NotKey(t.FlagKey(b"\\Recent"))
    p.sp()  # every other key has an argument
    if name in (b"KEYWORD", b"UNKEYWORD"):
        return t.FlagKey(p.atom(), present=name == b"KEYWORD")
    if name in _SEARCH_ADDRESSES:
        return t.AddressKey(name, p.astring())
    if name == b"SUBJECT":
        return t.HeaderKey(name, p.astring())
    if name == b"HEADER":
        field_name = p.astring()
        p.sp()
        return t.HeaderKey(field_name, p.astring())
    if name in (b"BODY", b"TEXT"):
        return t.TextKey(p.astring(), whole_message=name == b"TEXT")
    if name in _SEARCH_DATES:
        op, sent = _SEARCH_DATES[name]
        return t.DateKey(op, p.date(), sent)
    if name in (b"LARGER", b"SMALLER"):
        size = p.number(MAX_NUMBER64)  # number64 (RFC 9051 section 9)
        return t.SizeKey("larger" if name == b"LARGER" else "smaller", size)
    if name == b"NOT":
        return t.NotKey(_search_key(p))
    if name == b"OR":
        left = _search_key(p)
        p.sp()
        return t.OrKey(left, _search_key(p))
    if name == b"UID":
        return t.SequenceKey(p.sequence_set(), uid=True)
    if name == b"MODSEQ":
        return _modseq_key(p)
    if name in (b"EMAILID", b"THREADID"):
        return t.ObjectIdKey(p.objectid(), thread=name == b"THREADID")
    raise ParseError("unknown search key")


def _modseq_key(p: Parser) -> t.ModseqKey:
    """``MODSEQ [entry-name entry-type-req] mod-sequence-valzer`` (RFC 7162 section
    3.1.5). One mod-sequence per message is kept, so the entry is checked and
    ignored, as the RFC requires of such a server."""
    if p.at(b'"'):
        entry = p.quoted()
        if not entry.startswith(b"/flags/") or len(entry) == len(b"/flags/"):
            raise ParseError("invalid MODSEQ entry name")
        p.sp()
        if p.word("an entry type") not in (b"PRIV", b"SHARED", b"ALL"):
            raise ParseError("invalid MODSEQ entry type")
        p.sp()
    return t.ModseqKey(p.mod_sequence(zero=True))
