"""Server responses as bytes (RFC 3501 sections 7 and 9).

Two levels:

* value encoders that choose the right grammar form: ``quoted``, ``literal``,
  ``string``, ``astring``, ``nstring``, ``paren_list``;
* frozen response values with ``to_bytes()``: ``TaggedResponse``,
  ``UntaggedResponse`` (``* OK|NO|BAD|BYE|PREAUTH``), ``DataResponse`` (any other
  ``* ...`` line, built by the functions at the end: ``fetch_response``,
  ``list_response``, ...; those of SEARCH, SORT and THREAD are in
  :mod:`lightmail.imap.wire.results`) and ``ContinuationResponse``. ``render(response)``
  is the same as ``response.to_bytes()``;
* ``Completion`` (built by ``ok``, ``no`` and ``bad``): a command's tagged
  reply before its tag is stamped on it (``Completion.tagged``).

Human text (``text``) is never trusted: CR, LF, NUL and non-ASCII characters
are replaced so that a response is always exactly one line.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from lightmail.imap.wire.types import SequenceSet

__all__ = [
    "Code",
    "Completion",
    "ContinuationResponse",
    "DataResponse",
    "FetchValue",
    "Raw",
    "Response",
    "ResponseCode",
    "Status",
    "TaggedResponse",
    "UntaggedResponse",
    "astring",
    "bad",
    "capability_response",
    "enabled_response",
    "exists_response",
    "expunge_response",
    "fetch_response",
    "flag_list",
    "flags_response",
    "id_response",
    "list_response",
    "literal",
    "literal8",
    "literal_octets",
    "lsub_response",
    "mod_sequence",
    "namespace_response",
    "no",
    "nstring",
    "nz_number",
    "ok",
    "ordered_uid_set",
    "paren_list",
    "quoted",
    "recent_response",
    "render",
    "status_response",
    "string",
    "uid_set",
]

_CRLF = b"\r\n"

# --------------------------------------------------------------------------- values

_ATOM_CHARS = frozenset(range(0x21, 0x7F)) - frozenset(b'(){%*"\\]')
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_TAG_CHARS = _ASTRING_CHARS - {ord("+")}
_QUOTABLE = frozenset(range(0x01, 0x80)) - {0x0A, 0x0D}


def quoted(value: bytes) -> bytes:
    """``quoted``: 7-bit, no CR/LF/NUL; ``\\`` and ``"`` escaped. ValueError otherwise."""
    if not _QUOTABLE.issuperset(value):
        raise ValueError("value cannot be a quoted string; use literal()")
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(value: bytes) -> bytes:
    """``literal``: ``{n}`` CRLF and the octets (synchronizing form, the only one servers send).

    NUL becomes 0x80 (`literal_octets`), so the octet count stays right.
    """
    return b"{" + str(len(value)).encode() + b"}" + _CRLF + literal_octets(value)


def literal_octets(data: bytes) -> bytes:
    """Octets as they may go inside a ``literal``: each NUL replaced by 0x80.

    A literal holds ``CHAR8`` (%x01-ff) and RFC 3501 section 4.3.1 forbids
    unencoded binary strings, yet a delivered message may hold NUL. Dovecot
    sends 0x80 in its place; so do we. One octet for one: every size and
    offset computed from the stored bytes stays true. For streaming a literal
    chunk by chunk.
    """
    return data.replace(b"\x00", b"\x80") if b"\x00" in data else data


def literal8(value: bytes) -> bytes:
    """``literal8`` (RFC 3516 section 7): ``~{n}`` CRLF and the octets as they are,
    NUL included; only in a FETCH ``BINARY[...]`` response."""
    return b"~{" + str(len(value)).encode() + b"}" + _CRLF + value


def string(value: bytes) -> bytes:
    """``string``: quoted when the grammar allows it, else a literal."""
    return quoted(value) if _QUOTABLE.issuperset(value) else literal(value)


def astring(value: bytes) -> bytes:
    """``astring``: a bare atom (``]`` allowed) when possible, else ``string``."""
    if value and _ASTRING_CHARS.issuperset(value) and value.upper() != b"NIL":
        return value
    return string(value)


def nstring(value: bytes | None) -> bytes:
    """``nstring``: ``NIL`` for None, else ``string``."""
    return b"NIL" if value is None else string(value)


def paren_list(items: Iterable[bytes]) -> bytes:
    """``(`` items joined by SP ``)``; items are already rendered."""
    return b"(" + b" ".join(items) + b")"


def flag_list(flags: Iterable[bytes], *, allow_star: bool = False) -> bytes:
    """``flag-list``: flags are atoms (``\\Seen``, ``$Junk``), never quoted.

    ``allow_star`` admits ``\\*`` (``flag-perm``, for PERMANENTFLAGS only).
    """
    rendered = []
    for flag in flags:
        name = flag[1:] if flag.startswith(b"\\") else flag
        if not (name and _ATOM_CHARS.issuperset(name)) and not (allow_star and flag == b"\\*"):
            raise ValueError("not a flag atom")
        rendered.append(flag)
    return paren_list(rendered)


_UNSAFE_TEXT = re.compile(rb"[\x00-\x1f\x7f-\xff]")


def _text(text: str, default: str = "completed") -> bytes:
    """``text``: 1*TEXT-CHAR; control and non-ASCII characters become spaces / ``?``."""
    raw = _UNSAFE_TEXT.sub(b" ", text.encode("ascii", "replace")).strip()
    return raw or default.encode()


# --------------------------------------------------------------------------- response codes


class Code(enum.Enum):
    """``resp-text-code`` atoms: RFC 3501, 4315 (UIDPLUS), 5530, 7889 (TOOBIG), 4469,
    6154, 7162 (CONDSTORE and QRESYNC), 8474 (OBJECTID)."""

    ALERT = "ALERT"
    BADCHARSET = "BADCHARSET"
    CAPABILITY = "CAPABILITY"
    PARSE = "PARSE"
    PERMANENTFLAGS = "PERMANENTFLAGS"
    READ_ONLY = "READ-ONLY"
    READ_WRITE = "READ-WRITE"
    TRYCREATE = "TRYCREATE"
    UIDNEXT = "UIDNEXT"
    UIDVALIDITY = "UIDVALIDITY"
    UNSEEN = "UNSEEN"
    APPENDUID = "APPENDUID"
    COPYUID = "COPYUID"
    UIDNOTSTICKY = "UIDNOTSTICKY"
    UNAVAILABLE = "UNAVAILABLE"
    AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
    AUTHORIZATIONFAILED = "AUTHORIZATIONFAILED"
    EXPIRED = "EXPIRED"
    PRIVACYREQUIRED = "PRIVACYREQUIRED"
    CONTACTADMIN = "CONTACTADMIN"
    NOPERM = "NOPERM"
    INUSE = "INUSE"
    EXPUNGEISSUED = "EXPUNGEISSUED"
    CORRUPTION = "CORRUPTION"
    SERVERBUG = "SERVERBUG"
    CLIENTBUG = "CLIENTBUG"
    CANNOT = "CANNOT"
    LIMIT = "LIMIT"
    OVERQUOTA = "OVERQUOTA"
    ALREADYEXISTS = "ALREADYEXISTS"
    NONEXISTENT = "NONEXISTENT"
    TOOBIG = "TOOBIG"
    CLOSED = "CLOSED"  # RFC 7162: the previous mailbox was closed by SELECT
    USEATTR = "USEATTR"  # RFC 6154: the special use asked for in CREATE is not supported
    MAILBOXID = "MAILBOXID"  # RFC 8474: the object id of a created or selected mailbox
    HIGHESTMODSEQ = "HIGHESTMODSEQ"  # RFC 7162 section 3.1.2.1
    MODIFIED = "MODIFIED"  # RFC 7162 section 3.1.3: failed UNCHANGEDSINCE
    UNKNOWN_CTE = "UNKNOWN-CTE"  # RFC 3516 section 4.3: an encoding BINARY cannot undo
    BADURL = "BADURL"  # RFC 4469 section 4.1: a CATENATE URL that cannot be read


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """``[CODE data]``. Use the constructors for codes with data."""

    code: Code
    data: bytes = b""

    def __post_init__(self) -> None:
        if any(c in b"]\r\n\x00" for c in self.data):
            raise ValueError("response code data cannot contain ], CR, LF or NUL")

    def to_bytes(self) -> bytes:
        name = self.code.value.encode()
        return b"[" + (name + b" " + self.data if self.data else name) + b"]"

    @classmethod
    def capability(cls, capabilities: Iterable[str]) -> ResponseCode:
        return cls(Code.CAPABILITY, " ".join(capabilities).encode("ascii"))

    @classmethod
    def badcharset(cls, charsets: Iterable[str]) -> ResponseCode:
        names = [astring(c.encode("ascii")) for c in charsets]
        return cls(Code.BADCHARSET, paren_list(names) if names else b"")

    @classmethod
    def permanentflags(cls, flags: Iterable[bytes]) -> ResponseCode:
        """Include ``b"\\\\*"`` to say new keywords may be created."""
        return cls(Code.PERMANENTFLAGS, flag_list(flags, allow_star=True))

    @classmethod
    def uidnext(cls, uid: int) -> ResponseCode:
        return cls(Code.UIDNEXT, nz_number(uid))

    @classmethod
    def uidvalidity(cls, value: int) -> ResponseCode:
        return cls(Code.UIDVALIDITY, nz_number(value))

    @classmethod
    def unseen(cls, seq: int) -> ResponseCode:
        return cls(Code.UNSEEN, nz_number(seq))

    @classmethod
    def highestmodseq(cls, modseq: int) -> ResponseCode:
        """RFC 7162 section 3.1.2.1: a ``mod-sequence-value``."""
        return cls(Code.HIGHESTMODSEQ, mod_sequence(modseq))

    @classmethod
    def mailboxid(cls, objectid: bytes) -> ResponseCode:
        """RFC 8474 sections 4.1 and 4.2: ``MAILBOXID (objectid)``."""
        return cls(Code.MAILBOXID, b"(" + objectid + b")")

    @classmethod
    def modified(cls, numbers: Iterable[int]) -> ResponseCode:
        """RFC 7162 section 3.1.3: the messages (numbers or UIDs) that failed
        UNCHANGEDSINCE."""
        return cls(Code.MODIFIED, uid_set(numbers))

    @classmethod
    def appenduid(cls, uidvalidity: int, uids: Iterable[int]) -> ResponseCode:
        """RFC 4315 section 3."""
        return cls(Code.APPENDUID, nz_number(uidvalidity) + b" " + uid_set(uids))

    @classmethod
    def copyuid(
        cls, uidvalidity: int, source: Sequence[int], destination: Sequence[int]
    ) -> ResponseCode:
        """RFC 4315 section 3: the two sets pair up in order, so they are not re-sorted."""
        if len(source) != len(destination) or not source:
            raise ValueError("COPYUID needs matching, non-empty UID lists")
        return cls(
            Code.COPYUID,
            b" ".join(
                [nz_number(uidvalidity), ordered_uid_set(source), ordered_uid_set(destination)]
            ),
        )


def nz_number(n: int) -> bytes:
    """``nz-number``: 1 to 2**32-1."""
    if not 0 < n < 1 << 32:
        raise ValueError("not an nz-number")
    return str(n).encode()


def mod_sequence(value: int) -> bytes:
    """``mod-sequence-value`` (RFC 7162 section 7): 1 to 2**63-1."""
    if not 0 < value < 1 << 63:
        raise ValueError("not a mod-sequence-value")
    return str(value).encode()


def uid_set(uids: Iterable[int]) -> bytes:
    """A ``uid-set`` of the UIDs, ascending and compressed into ranges."""
    uids = list(uids)
    if not uids:
        raise ValueError("empty UID set")
    for uid in uids:
        nz_number(uid)
    return SequenceSet.from_numbers(uids).to_bytes()


def ordered_uid_set(uids: Sequence[int]) -> bytes:
    """Runs of consecutive ascending UIDs collapse into ranges; order is kept."""
    for uid in uids:
        nz_number(uid)
    parts: list[bytes] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(_range(start, prev))
        start = prev = uid
    parts.append(_range(start, prev))
    return b",".join(parts)


def _range(start: int, end: int) -> bytes:
    return str(start).encode() if start == end else f"{start}:{end}".encode()


# --------------------------------------------------------------------------- responses


class Status(enum.Enum):
    OK = "OK"
    NO = "NO"
    BAD = "BAD"
    BYE = "BYE"  # untagged only
    PREAUTH = "PREAUTH"  # untagged greeting only


def _resp_text(code: ResponseCode | None, text: str) -> bytes:
    body = _text(text)
    if code is None:  # a leading "[" would read as a response code
        return body.lstrip(b"[ ") or b"completed"
    return code.to_bytes() + b" " + body


@dataclass(frozen=True, slots=True)
class TaggedResponse:
    """``tag SP (OK / NO / BAD) SP [code SP] text`` (RFC 3501 section 7.1)."""

    tag: bytes
    status: Status
    text: str
    code: ResponseCode | None = None

    def __post_init__(self) -> None:
        if self.status not in (Status.OK, Status.NO, Status.BAD):
            raise ValueError("a tagged response is OK, NO or BAD")
        if not (self.tag and _TAG_CHARS.issuperset(self.tag)):
            raise ValueError("invalid tag")

    def to_bytes(self) -> bytes:
        return (
            self.tag + b" " + self.status.value.encode() + b" " + _resp_text(self.code, self.text)
        ) + _CRLF


@dataclass(frozen=True, slots=True)
class Completion:
    """A command's ``OK``, ``NO`` or ``BAD`` without its tag: what an IMAP handler
    returns; the dispatcher stamps the command's tag on it (``tagged``, which
    refuses any other status)."""

    status: Status
    text: str
    code: ResponseCode | None = None

    def tagged(self, tag: bytes) -> TaggedResponse:
        return TaggedResponse(tag, self.status, self.text, self.code)


def ok(text: str = "completed", code: Code | ResponseCode | None = None) -> Completion:
    return Completion(Status.OK, text, _code(code))


def no(text: str, code: Code | ResponseCode | None = None) -> Completion:
    return Completion(Status.NO, text, _code(code))


def bad(text: str) -> Completion:
    return Completion(Status.BAD, text)


def _code(code: Code | ResponseCode | None) -> ResponseCode | None:
    """A bare ``Code`` is a response code without data."""
    return ResponseCode(code) if isinstance(code, Code) else code


@dataclass(frozen=True, slots=True)
class UntaggedResponse:
    """``* (OK / NO / BAD / BYE / PREAUTH) SP [code SP] text`` (RFC 3501 section 7.1)."""

    status: Status
    text: str
    code: ResponseCode | None = None

    def to_bytes(self) -> bytes:
        return b"* " + self.status.value.encode() + b" " + _resp_text(self.code, self.text) + _CRLF


@dataclass(frozen=True, slots=True)
class DataResponse:
    """``* payload``: built by the ``*_response`` functions, which render the payload."""

    payload: bytes

    def to_bytes(self) -> bytes:
        return b"* " + self.payload + _CRLF


@dataclass(frozen=True, slots=True)
class ContinuationResponse:
    """``+ text`` (RFC 3501 section 7.5); for SASL pass the base64 challenge as ``text``."""

    text: str = ""

    def to_bytes(self) -> bytes:
        return b"+ " + _text(self.text, default="") + _CRLF


Response: TypeAlias = TaggedResponse | UntaggedResponse | DataResponse | ContinuationResponse


def render(response: Response) -> bytes:
    return response.to_bytes()


# --------------------------------------------------------------------------- data responses


@dataclass(frozen=True, slots=True)
class Raw:
    """Pre-rendered bytes placed as they are (ENVELOPE, BODYSTRUCTURE, a flag list)."""

    data: bytes


FetchValue: TypeAlias = "int | bytes | Raw | Sequence[FetchValue] | None"


def _fetch_value(value: FetchValue) -> bytes:
    if isinstance(value, Raw):
        return value.data
    if value is None:
        return b"NIL"
    if isinstance(value, bool):
        raise TypeError("bool is not a FETCH value")
    if isinstance(value, int):
        if not 0 <= value < 1 << 63:
            raise ValueError("number out of range")
        return str(value).encode()
    if isinstance(value, bytes):
        return string(value)
    return paren_list(_fetch_value(v) for v in value)


def fetch_response(seq: int, items: Sequence[tuple[bytes, FetchValue]]) -> DataResponse:
    """``* seq FETCH (name value ...)``.

    Values: ``int`` is a number, ``bytes`` an nstring (quoted or literal),
    ``None`` is NIL, ``Raw`` goes out as is, a list/tuple becomes a
    parenthesised list. Flags must be ``Raw(flag_list(...))``: they are atoms.
    """
    body = b" ".join(name + b" " + _fetch_value(value) for name, value in items)
    return DataResponse(nz_number(seq) + b" FETCH (" + body + b")")


def exists_response(count: int) -> DataResponse:
    return DataResponse(str(count).encode() + b" EXISTS")


def recent_response(count: int) -> DataResponse:
    return DataResponse(str(count).encode() + b" RECENT")


def expunge_response(seq: int) -> DataResponse:
    return DataResponse(nz_number(seq) + b" EXPUNGE")


def flags_response(flags: Iterable[bytes]) -> DataResponse:
    return DataResponse(b"FLAGS " + flag_list(flags))


def capability_response(capabilities: Iterable[str]) -> DataResponse:
    """Include ``IMAP4rev1`` yourself (first, by convention)."""
    return DataResponse(b"CAPABILITY " + " ".join(capabilities).encode("ascii"))


def _mailbox_list(attributes: Iterable[bytes], delimiter: bytes | None, name: bytes) -> bytes:
    if delimiter is None:
        delim = b"NIL"
    elif len(delimiter) == 1:
        delim = quoted(delimiter)
    else:
        raise ValueError("the hierarchy delimiter is one character or None")
    return flag_list(attributes) + b" " + delim + b" " + astring(name)


def list_response(
    attributes: Iterable[bytes],
    delimiter: bytes | None,
    name: bytes,
    *,
    childinfo: Iterable[str] = (),
) -> DataResponse:
    """``* LIST (\\HasNoChildren) "/" name``; ``name`` is the encoded (mUTF-7) mailbox.

    ``childinfo``: the selection options (RFC 5258 section 3.5) that a descendant
    meets, sent as ``("CHILDINFO" ("SUBSCRIBED"))``.
    """
    line = b"LIST " + _mailbox_list(attributes, delimiter, name)
    options = [quoted(option.encode("ascii")) for option in childinfo]
    if options:
        line += b' ("CHILDINFO" ' + paren_list(options) + b")"
    return DataResponse(line)


def lsub_response(
    attributes: Iterable[bytes], delimiter: bytes | None, name: bytes
) -> DataResponse:
    return DataResponse(b"LSUB " + _mailbox_list(attributes, delimiter, name))


def status_response(mailbox: bytes, items: Sequence[tuple[str, int | bytes]]) -> DataResponse:
    """``* STATUS name (MESSAGES 3 UIDNEXT 7)``; a bytes value is sent as it is
    (``MAILBOXID (F12)``, RFC 8474 section 4.3)."""
    body = b" ".join(
        name.encode("ascii") + b" " + (value if isinstance(value, bytes) else b"%d" % value)
        for name, value in items
    )
    return DataResponse(b"STATUS " + astring(mailbox) + b" (" + body + b")")


def quotaroot_response(mailbox: bytes, roots: Iterable[bytes]) -> DataResponse:
    """RFC 9208 section 4.2.2: ``* QUOTAROOT INBOX ""``."""
    return DataResponse(b" ".join([b"QUOTAROOT", astring(mailbox), *map(astring, roots)]))


def quota_response(root: bytes, resources: Iterable[tuple[str, int, int]]) -> DataResponse:
    """RFC 9208 section 4.2.1: ``* QUOTA "" (STORAGE 10 512)``, a (name, usage, limit)
    triplet per limited resource."""
    triplets = (
        b"%s %d %d" % (name.encode("ascii"), usage, limit) for name, usage, limit in resources
    )
    return DataResponse(b"QUOTA " + astring(root) + b" " + paren_list(triplets))


def id_response(params: Sequence[tuple[bytes, bytes | None]] | None) -> DataResponse:
    """RFC 2971: ``* ID ("name" "LightMail")`` or ``* ID NIL``."""
    if params is None or not params:
        return DataResponse(b"ID NIL")
    return DataResponse(b"ID " + paren_list(string(k) + b" " + nstring(v) for k, v in params))


def enabled_response(capabilities: Iterable[str]) -> DataResponse:
    """RFC 5161: ``* ENABLED`` followed by what was enabled (possibly nothing)."""
    return DataResponse(b" ".join([b"ENABLED", *(c.encode("ascii") for c in capabilities)]))


_Namespace: TypeAlias = Sequence[tuple[bytes, bytes | None]] | None


def namespace_response(personal: _Namespace, other: _Namespace, shared: _Namespace) -> DataResponse:
    """RFC 2342: each is None (NIL) or ``[(prefix, delimiter or None), ...]``."""

    def one(namespaces: _Namespace) -> bytes:
        if not namespaces:
            return b"NIL"
        return paren_list(
            b"(" + string(prefix) + b" " + (b"NIL" if d is None else quoted(d)) + b")"
            for prefix, d in namespaces
        )

    return DataResponse(b"NAMESPACE " + one(personal) + b" " + one(other) + b" " + one(shared))
