"""The IMAP command grammar, through the receiver: every command, SEARCH, FETCH, STORE, errors.

Each case goes through ``check`` (``receiver_harness``), so it is also fed one
byte at a time and split everywhere.
"""

from __future__ import annotations

import datetime

import pytest

from lightmail.imap.wire.commands import (
    AppendCommand,
    AuthenticateCommand,
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    Command,
    CopyCommand,
    CreateCommand,
    DeleteCommand,
    EnableCommand,
    ExpungeCommand,
    FetchCommand,
    GetQuotaCommand,
    GetQuotaRootCommand,
    IdCommand,
    IdleCommand,
    ListCommand,
    LoginCommand,
    LogoutCommand,
    LsubCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    RenameCommand,
    SearchCommand,
    SelectCommand,
    SortCommand,
    StartTlsCommand,
    StatusCommand,
    StoreCommand,
    SubscribeCommand,
    ThreadCommand,
    UidExpungeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from lightmail.imap.wire.grammar import parse_command
from lightmail.imap.wire.parser import ParseError, Utf8
from lightmail.imap.wire.receiver import (
    NEED_DATA,
    AppendEnd,
    BadCommand,
    ContinuationRequest,
    Event,
    LiteralChunk,
    LocalProtocolError,
    Receiver,
)
from lightmail.imap.wire.types import (
    AddressKey,
    AllKey,
    AndKey,
    BinarySection,
    BodySection,
    DateKey,
    FetchAttribute,
    FetchItem,
    FlagKey,
    HeaderKey,
    ModseqKey,
    NotKey,
    ObjectIdKey,
    OrKey,
    PartialRange,
    QresyncParameter,
    SearchKey,
    SearchReturn,
    SectionText,
    SequenceKey,
    SequenceSet,
    SizeKey,
    SortCriterion,
    SortKey,
    TextKey,
    ThreadAlgorithm,
)
from tests.unit.imap.receiver_harness import (
    bad,
    check,
    one,
    seq,
)

# --------------------------------------------------------------------------- RFC 3501 section 8


def test_rfc3501_section8_client_lines() -> None:
    transcript = (
        b"a001 login mrc secret\r\n"
        b"a002 select inbox\r\n"
        b"a003 fetch 12 full\r\n"
        b"a004 fetch 12 body[header]\r\n"
        b"a005 store 12 +flags \\deleted\r\n"
        b"a006 logout\r\n"
    )
    full = (
        FetchItem.FLAGS,
        FetchItem.INTERNALDATE,
        FetchItem.RFC822_SIZE,
        FetchItem.ENVELOPE,
        FetchItem.BODY,
    )
    assert check(transcript) == [
        LoginCommand(b"a001", b"mrc", b"secret"),
        SelectCommand(b"a002", b"INBOX"),
        FetchCommand(b"a003", False, seq((12, 12)), full),
        FetchCommand(b"a004", False, seq((12, 12)), (BodySection(text=SectionText.HEADER),)),
        StoreCommand(b"a005", False, seq((12, 12)), "add", False, (b"\\Deleted",)),
        LogoutCommand(b"a006"),
    ]


# --------------------------------------------------------------------------- every command

SIMPLE_COMMANDS: list[tuple[bytes, Event]] = [
    (b"abcd CAPABILITY\r\n", CapabilityCommand(b"abcd")),
    (b"a002 NOOP\r\n", NoopCommand(b"a002")),
    (b"A023 LOGOUT\r\n", LogoutCommand(b"A023")),
    (b"a002 STARTTLS\r\n", StartTlsCommand(b"a002")),
    (b"A001 LOGIN SMITH SACRED\r\n", LoginCommand(b"A001", b"SMITH", b"SACRED")),
    (b'A1 login "a\\"b\\\\c" ""\r\n', LoginCommand(b"A1", b'a"b\\c', b"")),
    (b"A1 LOGIN u]ser p]w\r\n", LoginCommand(b"A1", b"u]ser", b"p]w")),
    (b"A142 SELECT INBOX\r\n", SelectCommand(b"A142", b"INBOX")),
    (b'A142 SELECT "iNbOx"\r\n', SelectCommand(b"A142", b"INBOX")),
    (b"A142 SELECT INBOX.sub\r\n", SelectCommand(b"A142", b"INBOX.sub")),
    (b"A932 EXAMINE blurdybloop\r\n", SelectCommand(b"A932", b"blurdybloop", readonly=True)),
    (b"A003 CREATE owatagusiam/\r\n", CreateCommand(b"A003", b"owatagusiam/")),
    (b"A683 DELETE blurdybloop\r\n", DeleteCommand(b"A683", b"blurdybloop")),
    (b"A683 RENAME blurdybloop sarasoop\r\n", RenameCommand(b"A683", b"blurdybloop", b"sarasoop")),
    (
        b"A002 SUBSCRIBE #news.comp.mail.mime\r\n",
        SubscribeCommand(b"A002", b"#news.comp.mail.mime"),
    ),
    (
        b"A002 UNSUBSCRIBE #news.comp.mail.mime\r\n",
        UnsubscribeCommand(b"A002", b"#news.comp.mail.mime"),
    ),
    (b'A101 LIST "" ""\r\n', ListCommand(b"A101", b"", (b"",))),
    (b"A202 LIST ~/Mail/ %\r\n", ListCommand(b"A202", b"~/Mail/", (b"%",))),
    (b'A1 LIST "" *\r\n', ListCommand(b"A1", b"", (b"*",))),
    (b"A1 LIST foo ]*%x\r\n", ListCommand(b"A1", b"foo", (b"]*%x",))),
    (
        b'A1 LIST (SUBSCRIBED) "" "*" RETURN (CHILDREN special-use)\r\n',
        ListCommand(
            b"A1",
            b"",
            (b"*",),
            frozenset({"SUBSCRIBED"}),
            frozenset({"CHILDREN", "SPECIAL-USE"}),
            extended=True,
        ),
    ),
    (b'A1 LIST "" "%" RETURN ()\r\n', ListCommand(b"A1", b"", (b"%",), extended=True)),
    # RFC 5258 section 5, examples 5, 7 and 8; RFC 5819 section 3; RFC 6154 section 5.2.
    (
        b'A05 LIST (REMOTE SUBSCRIBED) "" "*"\r\n',
        ListCommand(b"A05", b"", (b"*",), frozenset({"REMOTE", "SUBSCRIBED"}), extended=True),
    ),
    (
        b'BBB LIST "" ("INBOX" "Drafts" "Sent/%")\r\n',
        ListCommand(b"BBB", b"", (b"INBOX", b"Drafts", b"Sent/%"), extended=True),
    ),
    (
        b'C04 LIST (SUBSCRIBED RECURSIVEMATCH subscribed) "" "%" RETURN (CHILDREN)\r\n',
        ListCommand(
            b"C04",
            b"",
            (b"%",),
            frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}),
            frozenset({"CHILDREN"}),
            extended=True,
        ),
    ),
    (
        b'A01 LIST () "" % RETURN (STATUS (MESSAGES unseen SIZE messages))\r\n',
        ListCommand(
            b"A01",
            b"",
            (b"%",),
            return_options=frozenset({"STATUS"}),
            status_items=("MESSAGES", "UNSEEN", "SIZE"),
            extended=True,
        ),
    ),
    (
        b't3 LIST (SPECIAL-USE) "" "*"\r\n',
        ListCommand(b"t3", b"", (b"*",), frozenset({"SPECIAL-USE"}), extended=True),
    ),
    (
        b"t2 CREATE MySpecial (USE (\\Drafts \\Sent))\r\n",
        CreateCommand(b"t2", b"MySpecial", (b"\\Drafts", b"\\Sent")),
    ),
    (b"t2 CREATE x (USE ())\r\n", CreateCommand(b"t2", b"x")),
    (b'G0001 GETQUOTA "!partition/sda4"\r\n', GetQuotaCommand(b"G0001", b"!partition/sda4")),
    (b'G GETQUOTA ""\r\n', GetQuotaCommand(b"G", b"")),
    (b"G0002 GETQUOTAROOT inbox\r\n", GetQuotaRootCommand(b"G0002", b"INBOX")),
    (b"t1 STATUS INBOX (APPENDLIMIT)\r\n", StatusCommand(b"t1", b"INBOX", ("APPENDLIMIT",))),
    (
        b"S0003 STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)\r\n",
        StatusCommand(b"S0003", b"INBOX", ("MESSAGES", "DELETED", "DELETED-STORAGE")),
    ),
    (
        b"A01 STATUS frop (MESSAGES SIZE UIDNEXT)\r\n",
        StatusCommand(b"A01", b"frop", ("MESSAGES", "SIZE", "UIDNEXT")),
    ),
    (b'A002 LSUB "#news." "comp.mail.*"\r\n', LsubCommand(b"A002", b"#news.", b"comp.mail.*")),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)\r\n",
        StatusCommand(b"A042", b"blurdybloop", ("UIDNEXT", "MESSAGES")),
    ),
    (
        b"A042 STATUS inbox (messages recent uidnext uidvalidity unseen)\r\n",
        StatusCommand(
            b"A042", b"INBOX", ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")
        ),
    ),
    (b"FXXZ CHECK\r\n", CheckCommand(b"FXXZ")),
    (b"A341 CLOSE\r\n", CloseCommand(b"A341")),
    (b"A341 unselect\r\n", UnselectCommand(b"A341")),
    (b"A202 EXPUNGE\r\n", ExpungeCommand(b"A202")),
    (b"A202 UID EXPUNGE 3000:3002\r\n", UidExpungeCommand(b"A202", seq((3000, 3002)))),
    (b"A003 COPY 2:4 MEETING\r\n", CopyCommand(b"A003", False, seq((2, 4)), b"MEETING")),
    (b"A003 UID COPY 2:4 inbox\r\n", CopyCommand(b"A003", True, seq((2, 4)), b"INBOX")),
    (b"a MOVE 1:3 Trash\r\n", MoveCommand(b"a", False, seq((1, 3)), b"Trash")),
    (b"a uid move 42 {5+}\r\nTrash\r\n", MoveCommand(b"a", True, seq((42, 42)), b"Trash")),
    (b"a NAMESPACE\r\n", NamespaceCommand(b"a")),
    (b"a IDLE\r\nDONE\r\n", IdleCommand(b"a")),
    (b"a ENABLE CONDSTORE x-good-idea\r\n", EnableCommand(b"a", ("CONDSTORE", "X-GOOD-IDEA"))),
    (b"a ID NIL\r\n", IdCommand(b"a", None)),
    (b"a ID ()\r\n", IdCommand(b"a", ())),
    (
        b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")\r\n',
        IdCommand(
            b"a023",
            ((b"name", b"sodr"), (b"version", b"19.34"), (b"vendor", b"Pink Floyd Music Limited")),
        ),
    ),
    (b'a ID ("os" NIL "x" {2}\r\nab)\r\n', IdCommand(b"a", ((b"os", None), (b"x", b"ab")))),
    (
        b"a AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0\r\n",
        AuthenticateCommand(b"a", "PLAIN", b"AGZyZWQAc2VjcmV0"),
    ),
    (b"a AUTHENTICATE plain =\r\n", AuthenticateCommand(b"a", "PLAIN", b"")),
    (b"a AUTHENTICATE XOAUTH2 dXNlcj0=\r\n", AuthenticateCommand(b"a", "XOAUTH2", b"dXNlcj0=")),
    (b"a1.b]c CAPABILITY\r\n", CapabilityCommand(b"a1.b]c")),
    (
        b"a SORT (REVERSE DATE subject) UTF-8 ALL\r\n",
        SortCommand(
            b"a",
            False,
            (SortCriterion(SortKey.DATE, reverse=True), SortCriterion(SortKey.SUBJECT)),
            "UTF-8",
            AllKey(),
        ),
    ),
    (
        b"a UID THREAD references us-ascii SEEN\r\n",
        ThreadCommand(b"a", True, ThreadAlgorithm.REFERENCES, "US-ASCII", FlagKey(b"\\Seen")),
    ),
]


# RFC 7162 (CONDSTORE, QRESYNC): its modifiers in RFC 4466's syntax, the MODSEQ key.
FETCH_FLAGS = (FetchItem.FLAGS,)
SIMPLE_COMMANDS += [
    (b"a SELECT INBOX (CONDSTORE)\r\n", SelectCommand(b"a", b"INBOX", condstore=True)),
    (
        b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
        SelectCommand(
            b"A02",
            b"INBOX",
            qresync=QresyncParameter(
                67890007, 20050715194045000, seq((41, 41), (43, 211), (214, 541))
            ),
        ),
    ),
    (
        b"B04 examine INBOX (qresync (67890007 90060115194045000 1:29997 (5000,7500,9990:9999"
        b" 15000,22500,29970:29979)) condstore)\r\n",
        SelectCommand(
            b"B04",
            b"INBOX",
            readonly=True,
            condstore=True,
            qresync=QresyncParameter(
                67890007,
                90060115194045000,
                seq((1, 29997)),
                (
                    seq((5000, 5000), (7500, 7500), (9990, 9999)),
                    seq((15000, 15000), (22500, 22500), (29970, 29979)),
                ),
            ),
        ),
    ),
    (
        b"a SELECT x (QRESYNC (1 9223372036854775807 (1 2)))\r\n",
        SelectCommand(
            b"a", b"x", qresync=QresyncParameter(1, (1 << 63) - 1, None, (seq((1, 1)), seq((2, 2))))
        ),
    ),
    (
        b"A042 STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)\r\n",
        StatusCommand(b"A042", b"blurdybloop", ("UIDNEXT", "MESSAGES", "HIGHESTMODSEQ")),
    ),
    (
        b"s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)\r\n",
        FetchCommand(b"s100", True, seq((300, 500)), FETCH_FLAGS, 12345, vanished=True),
    ),
    (
        b"a FETCH 1:3 (MODSEQ)\r\n",
        FetchCommand(b"a", False, seq((1, 3)), (FetchItem.MODSEQ,)),
    ),
    (
        b"a fetch 1:* fast (changedsince 1)\r\n",
        FetchCommand(
            b"a",
            False,
            seq((1, "*")),
            (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE),
            1,
        ),
    ),
    (
        b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)\r\n",
        StoreCommand(
            b"a103", True, seq((6, 6), (4, 4), (8, 8)), "add", True, (b"\\Deleted",), 12121230045
        ),
    ),
    (
        b"a102 STORE 12 (UNCHANGEDSINCE 0) +FLAGS.SILENT ($MDNSent)\r\n",
        StoreCommand(b"a102", False, seq((12, 12)), "add", True, (b"$MDNSent",), 0),
    ),
    (
        b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338\r\n',
        SearchCommand(b"a", False, None, ModseqKey(620162338)),
    ),
    (
        b"t SEARCH OR NOT MODSEQ 720162338 LARGER 50000\r\n",
        SearchCommand(
            b"t", False, None, OrKey(NotKey(ModseqKey(720162338)), SizeKey("larger", 50000))
        ),
    ),
]


# RFC 4731 ESEARCH, RFC 9394 PARTIAL and RFC 5267 ESORT: result options.
SIMPLE_COMMANDS += [
    (
        b"A282 SEARCH RETURN (MIN COUNT) FLAGGED\r\n",
        SearchCommand(
            b"A282", False, None, FlagKey(b"\\Flagged"), SearchReturn(frozenset({"MIN", "COUNT"}))
        ),
    ),
    (
        b"a UID SEARCH RETURN () CHARSET UTF-8 ALL\r\n",
        SearchCommand(b"a", True, "UTF-8", AllKey(), SearchReturn(frozenset({"ALL"}))),
    ),
    (
        b"A01 UID SEARCH RETURN (PARTIAL -1:-100) ALL\r\n",
        SearchCommand(
            b"A01", True, None, AllKey(), SearchReturn(frozenset(), PartialRange(-1, -100))
        ),
    ),
    (
        b"10 UID FETCH 25900:26600 (UID FLAGS) (PARTIAL -1:-3 CHANGEDSINCE 98305)\r\n",
        FetchCommand(
            b"10",
            True,
            seq((25900, 26600)),
            (FetchItem.UID, FetchItem.FLAGS),
            98305,
            partial=PartialRange(-1, -3),
        ),
    ),
    (
        b"a SORT RETURN (MAX) (DATE) UTF-8 ALL\r\n",
        SortCommand(
            b"a",
            False,
            (SortCriterion(SortKey.DATE),),
            "UTF-8",
            AllKey(),
            SearchReturn(frozenset({"MAX"})),
        ),
    ),
]


# RFC 5182 SEARCHRES: RETURN (SAVE) and "$" wherever a sequence set goes.
SAVED = SequenceSet((), saved=True)
SIMPLE_COMMANDS += [
    (
        b"A282 SEARCH RETURN (SAVE) FLAGGED\r\n",
        SearchCommand(
            b"A282", False, None, FlagKey(b"\\Flagged"), SearchReturn(frozenset({"SAVE"}))
        ),
    ),
    (b"A283 FETCH $ (UID)\r\n", FetchCommand(b"A283", False, SAVED, (FetchItem.UID,))),
    (
        b"A301 UID SEARCH UID $ SMALLER 4096\r\n",
        SearchCommand(
            b"A301", True, None, AndKey((SequenceKey(SAVED, uid=True), SizeKey("smaller", 4096)))
        ),
    ),
    (
        b"P283 SEARCH CHARSET UTF-8 (OR $ 1,3000:3021) TEXT {3}\r\nabc\r\n",
        SearchCommand(
            b"P283",
            False,
            "UTF-8",
            AndKey(
                (
                    OrKey(
                        SequenceKey(SAVED, uid=False),
                        SequenceKey(seq((1, 1), (3000, 3021)), uid=False),
                    ),
                    TextKey(b"abc", whole_message=True),
                )
            ),
        ),
    ),
    (b'E283 COPY $ "Other Messages"\r\n', CopyCommand(b"E283", False, SAVED, b"Other Messages")),
    (b"a UID MOVE $ Junk\r\n", MoveCommand(b"a", True, SAVED, b"Junk")),
    (
        b"F284 STORE $ +FLAGS.Silent (\\Deleted)\r\n",
        StoreCommand(b"F284", False, SAVED, "add", True, (b"\\Deleted",)),
    ),
    (b"a UID EXPUNGE $\r\n", UidExpungeCommand(b"a", SAVED)),
]


@pytest.mark.parametrize(
    "data",
    [
        b"a FETCH $,1 FLAGS\r\n",
        b"a FETCH 1,$ FLAGS\r\n",
        b"a FETCH $:3 FLAGS\r\n",
        b"a FETCH $$ FLAGS\r\n",
        b"a COPY $1 x\r\n",
        b"a SELECT x (QRESYNC (1 1 $))\r\n",
        b"a SORT RETURN (SAVE) (DATE) UTF-8 ALL\r\n",
        b"a SEARCH RETURN (SAVE SAVE) ALL\r\n",
        b"a SEARCH RETURN (SAVE) $ $$\r\n",
    ],
)
def test_searchres_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


@pytest.mark.parametrize(
    "data",
    [
        b"a SELECT INBOX ()\r\n",
        b"a SELECT INBOX (FOO)\r\n",
        b"a SELECT INBOX (CONDSTORE CONDSTORE)\r\n",
        b"a SELECT INBOX (CONDSTORE\r\n",
        b"a SELECT INBOX  (CONDSTORE)\r\n",
        b"a SELECT INBOX (QRESYNC)\r\n",
        b"a SELECT INBOX (QRESYNC ())\r\n",
        b"a SELECT INBOX (QRESYNC (1))\r\n",
        b"a SELECT INBOX (QRESYNC (0 1))\r\n",
        b"a SELECT INBOX (QRESYNC (1 0))\r\n",
        b"a SELECT INBOX (QRESYNC (1 9223372036854775808))\r\n",
        b"a SELECT INBOX (QRESYNC (1 99999999999999999999999999))\r\n",
        b"a SELECT INBOX (QRESYNC (1 1 1:*))\r\n",
        b"a SELECT INBOX (QRESYNC (1 1 1:5 (1:2)))\r\n",
        b"a SELECT INBOX (QRESYNC (1 1 1:5 (1 *)))\r\n",
        b"a SELECT INBOX (QRESYNC (1 1 1:5 (1 2) (3 4)))\r\n",
        b"a SELECT INBOX (QRESYNC (1 1) QRESYNC (1 1))\r\n",
        b"a SELECT INBOX (QRESYNC (1 1)\r\n",
        b"a STATUS INBOX (HIGHESTMODSEQ 5)\r\n",
        b"a FETCH 1 FLAGS ()\r\n",
        b"a FETCH 1 FLAGS (FOO 1)\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE)\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 0)\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE -1)\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)\r\n",
        b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)\r\n",
        b"a UID FETCH 1 FLAGS (VANISHED)\r\n",
        b"a UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)\r\n",
        b"a UID FETCH 1 FLAGS (CHANGEDSINCE 1) \r\n",
        b"a FETCH 1 FLAGS (PARTIAL 1:2)\r\n",
        b"a UID FETCH 1 FLAGS (PARTIAL 1:2 PARTIAL 1:2)\r\n",
        b"a UID FETCH 1 FLAGS (PARTIAL 1:*)\r\n",
        b"a UID FETCH 1 FLAGS (PARTIAL -1:2)\r\n",
        b"a STORE 1 (UNCHANGEDSINCE 1 UNCHANGEDSINCE 2) +FLAGS (x)\r\n",
        b"a STORE 1 (UNCHANGEDSINCE) +FLAGS (x)\r\n",
        b"a STORE 1 (UNCHANGEDSINCE -1) +FLAGS (x)\r\n",
        b"a STORE 1 (UNCHANGEDSINCE 99999999999999999999) +FLAGS (x)\r\n",
        b"a STORE 1 (FOO 1) +FLAGS (x)\r\n",
        b"a STORE 1 (UNCHANGEDSINCE 5)+FLAGS (x)\r\n",
        b"a STORE 1 () +FLAGS (x)\r\n",
        b"a SEARCH MODSEQ\r\n",
        b"a SEARCH MODSEQ x\r\n",
        b"a SEARCH MODSEQ 9223372036854775808\r\n",
        b'a SEARCH MODSEQ "/flags/\\\\seen" 5\r\n',
        b'a SEARCH MODSEQ "/foo/x" all 5\r\n',
        b'a SEARCH MODSEQ "/flags/" all 5\r\n',
        b'a SEARCH MODSEQ "/flags/x" none 5\r\n',
    ],
)
def test_condstore_and_qresync_bad(data: bytes) -> None:
    """Malformed RFC 7162 arguments are a BAD, and the next command still parses."""
    assert bad(data).tag == b"a"


@pytest.mark.parametrize(("data", "expected"), SIMPLE_COMMANDS)
def test_command(data: bytes, expected: Event) -> None:
    events = [e for e in check(data) if not isinstance(e, ContinuationRequest)]
    assert events[0] == expected


# --------------------------------------------------------------------------- SEARCH

D = datetime.date(1994, 2, 1)
SEARCH_KEYS: list[tuple[bytes, SearchKey]] = [
    (b"ALL", AllKey()),
    (b"EMAILID M6d99ac3275bb4e", ObjectIdKey(b"M6d99ac3275bb4e", thread=False)),  # RFC 8474
    (b"threadid T64b478a7_5b7e-a9", ObjectIdKey(b"T64b478a7_5b7e-a9", thread=True)),
    (b"ANSWERED", FlagKey(b"\\Answered")),
    (b'BCC "x y"', AddressKey(b"BCC", b"x y")),
    (b"BEFORE 1-Feb-1994", DateKey("before", D, sent=False)),
    (b"BODY {3}\r\nz\r\n", TextKey(b"z\r\n", whole_message=False)),
    (b"CC x", AddressKey(b"CC", b"x")),
    (b"DELETED", FlagKey(b"\\Deleted")),
    (b"DRAFT", FlagKey(b"\\Draft")),
    (b"FLAGGED", FlagKey(b"\\Flagged")),
    (b"FROM Smith", AddressKey(b"FROM", b"Smith")),
    (b"HEADER X-Spam-Flag YES", HeaderKey(b"X-Spam-Flag", b"YES")),
    (b'HEADER "Message-ID" ""', HeaderKey(b"Message-ID", b"")),
    (b"KEYWORD $Junk", FlagKey(b"$Junk")),
    (b"LARGER 1024", SizeKey("larger", 1024)),
    (b"NEW", AndKey((FlagKey(b"\\Recent"), FlagKey(b"\\Seen", present=False)))),
    (b"NOT SEEN", NotKey(FlagKey(b"\\Seen"))),
    (b"OLD", NotKey(FlagKey(b"\\Recent"))),
    (b'ON "01-Feb-1994"', DateKey("on", D, sent=False)),
    (b"OR SEEN DRAFT", OrKey(FlagKey(b"\\Seen"), FlagKey(b"\\Draft"))),
    (b"RECENT", FlagKey(b"\\Recent")),
    (b"SEEN", FlagKey(b"\\Seen")),
    (b"SENTBEFORE 1-feb-1994", DateKey("before", D, sent=True)),
    (b"SENTON 01-FEB-1994", DateKey("on", D, sent=True)),
    (b"SENTSINCE 1-Feb-1994", DateKey("since", D, sent=True)),
    (b"SINCE 1-Feb-1994", DateKey("since", D, sent=False)),
    (b"SMALLER 0", SizeKey("smaller", 0)),
    (b"SUBJECT hello", HeaderKey(b"SUBJECT", b"hello")),
    (b'TEXT "string not in mailbox"', TextKey(b"string not in mailbox", whole_message=True)),
    (b"TO x", AddressKey(b"TO", b"x")),
    (b"UID 1:*", SequenceKey(seq((1, "*")), uid=True)),
    (b"UNANSWERED", FlagKey(b"\\Answered", present=False)),
    (b"UNDELETED", FlagKey(b"\\Deleted", present=False)),
    (b"UNDRAFT", FlagKey(b"\\Draft", present=False)),
    (b"UNFLAGGED", FlagKey(b"\\Flagged", present=False)),
    (b"UNKEYWORD $Junk", FlagKey(b"$Junk", present=False)),
    (b"UNSEEN", FlagKey(b"\\Seen", present=False)),
    (b"2,4:7,9,12:*", SequenceKey(seq((2, 2), (4, 7), (9, 9), (12, "*")), uid=False)),
    (b"*", SequenceKey(seq(("*", "*")), uid=False)),
    (b"(SEEN)", FlagKey(b"\\Seen")),
    (b"(seen unanswered)", AndKey((FlagKey(b"\\Seen"), FlagKey(b"\\Answered", present=False)))),
    (
        b"OR (NOT FROM a) (OR TO b CC {1+}\r\nc)",
        OrKey(
            NotKey(AddressKey(b"FROM", b"a")),
            OrKey(AddressKey(b"TO", b"b"), AddressKey(b"CC", b"c")),
        ),
    ),
    (b"NOT NOT (ALL)", NotKey(NotKey(AllKey()))),
]


@pytest.mark.parametrize(("text", "key"), SEARCH_KEYS)
def test_search_key(text: bytes, key: SearchKey) -> None:
    events = [
        e for e in check(b"s SEARCH " + text + b"\r\n") if not isinstance(e, ContinuationRequest)
    ]
    assert events == [SearchCommand(b"s", False, None, key)]


def test_search_rfc_example_and_uid_and_charset() -> None:
    assert one(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"\r\n') == SearchCommand(
        b"A282",
        False,
        None,
        AndKey(
            (
                FlagKey(b"\\Flagged"),
                DateKey("since", D, False),
                NotKey(AddressKey(b"FROM", b"Smith")),
            )
        ),
    )
    text = "XYZ日本".encode()
    assert check(b"A284 uid search charset utf-8 TEXT {%d}\r\n" % len(text) + text + b"\r\n") == [
        ContinuationRequest(len(text)),
        SearchCommand(b"A284", True, "UTF-8", TextKey(text, whole_message=True)),
    ]
    assert one(b'a SEARCH CHARSET UTF-8 SUBJECT "caf\xc3\xa9"\r\n') == SearchCommand(
        b"a", False, "UTF-8", HeaderKey(b"SUBJECT", "café".encode())
    )


@pytest.mark.parametrize(
    "data",
    [
        b"a SEARCH\r\n",
        b"a SEARCH \r\n",
        b"a SEARCH FOO\r\n",
        b"a SEARCH ALL \r\n",
        b"a SEARCH ALLX\r\n",
        b"a SEARCH FROM\r\n",
        b"a SEARCH OR SEEN\r\n",
        b"a SEARCH (SEEN\r\n",
        b"a SEARCH ()\r\n",
        b"a SEARCH SINCE 31-Feb-2020\r\n",
        b"a SEARCH SINCE 1-Fbr-2020\r\n",
        b'a SEARCH SINCE "1-Feb-2020\r\n',
        b"a SEARCH LARGER -1\r\n",
        b"a SEARCH LARGER 9223372036854775808\r\n",  # number64 is 63-bit (RFC 9051 9)
        b"a SEARCH KEYWORD \\Seen\r\n",
        b'a SEARCH SUBJECT "caf\xc3\xa9"\r\n',  # 8-bit quoted needs a CHARSET
        b"a SEARCH CHARSET UTF-8\r\n",
        b"a SEARCH 0\r\n",
        b"a SEARCH 1:0\r\n",
        b"a SEARCH 01\r\n",
        b"a SEARCH 1,\r\n",
        b"a SEARCH EMAILID\r\n",
        b"a SEARCH EMAILID M.1\r\n",
        b'a SEARCH EMAILID "M1"\r\n',
        b"a SEARCH THREADID T" + b"1" * 255 + b"\r\n",
        b"a SEARCH $1\r\n",
        b"a SEARCH $:4\r\n",
        b"a SEARCH 1,$\r\n",
    ],
)
def test_search_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


def test_deep_nesting_parentheses() -> None:
    assert bad(b"a SEARCH " + b"(" * 10000 + b"ALL" + b")" * 10000 + b"\r\n").tag == b"a"


def test_deep_nesting_not() -> None:
    assert bad(b"a SEARCH " + b"NOT " * 10000 + b"ALL\r\n").tag == b"a"


def test_nesting_within_max_depth() -> None:
    key: SearchKey = AllKey()
    for _ in range(20):
        key = NotKey(key)
    assert one(b"a SEARCH " + b"NOT " * 20 + b"ALL\r\n") == SearchCommand(b"a", False, None, key)


def test_too_many_search_keys_is_bad_and_the_next_command_is_read() -> None:
    r = Receiver(max_search_keys=3)
    r.receive_data(b"a SEARCH OR SEEN ALL\r\nb SEARCH NOT OR SEEN ALL\r\nc NOOP\r\n")
    assert r.next_event() == SearchCommand(b"a", False, None, OrKey(FlagKey(b"\\Seen"), AllKey()))
    event = r.next_event()
    assert isinstance(event, BadCommand)
    assert (event.tag, event.fatal) == (b"b", False)
    assert "too many search keys (at most 3)" in event.text
    assert r.next_event() == NoopCommand(b"c")


def test_search_key_limit_counts_every_key() -> None:
    r = Receiver()  # the default: 100
    keys = b" ".join([b"TEXT q"] * 100)
    r.receive_data(b"a SEARCH " + keys + b"\r\nb SEARCH ALL " + keys + b"\r\n")
    assert isinstance(r.next_event(), SearchCommand)
    assert isinstance(r.next_event(), BadCommand)
    with pytest.raises(ValueError, match="max_search_keys"):
        Receiver(max_search_keys=0)


# --------------------------------------------------------------------------- FETCH

FETCH_ATTRIBUTES: list[tuple[bytes, tuple[FetchAttribute, ...]]] = [
    (b"(EMAILID THREADID)", (FetchItem.EMAILID, FetchItem.THREADID)),  # RFC 8474 section 5.3
    (b"ALL", (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE, FetchItem.ENVELOPE)),
    (b"fast", (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE)),
    (b"FLAGS", (FetchItem.FLAGS,)),
    (b"INTERNALDATE", (FetchItem.INTERNALDATE,)),
    (b"RFC822.SIZE", (FetchItem.RFC822_SIZE,)),
    (b"ENVELOPE", (FetchItem.ENVELOPE,)),
    (b"BODYSTRUCTURE", (FetchItem.BODYSTRUCTURE,)),
    (b"BODY", (FetchItem.BODY,)),
    (b"UID", (FetchItem.UID,)),
    (b"RFC822", (FetchItem.RFC822,)),
    (b"rfc822.header", (FetchItem.RFC822_HEADER,)),
    (b"RFC822.TEXT", (FetchItem.RFC822_TEXT,)),
    (b"BODY[]", (BodySection(),)),
    (b"BODY.PEEK[]", (BodySection(peek=True),)),
    (b"body[header]", (BodySection(text=SectionText.HEADER),)),
    (b"BODY[TEXT]", (BodySection(text=SectionText.TEXT),)),
    (b"BODY[1]", (BodySection(part=(1,)),)),
    (b"BODY[1.2.3]", (BodySection(part=(1, 2, 3)),)),
    (b"BODY[1.MIME]", (BodySection(part=(1,), text=SectionText.MIME),)),
    (b"BODY[4.2.HEADER]", (BodySection(part=(4, 2), text=SectionText.HEADER),)),
    (b"BODY[3.TEXT]", (BodySection(part=(3,), text=SectionText.TEXT),)),
    (
        b"BODY[HEADER.FIELDS (DATE FROM)]",
        (BodySection(text=SectionText.HEADER_FIELDS, fields=(b"DATE", b"FROM")),),
    ),
    (
        b'BODY.PEEK[2.HEADER.FIELDS.NOT ("Received" X-Spam)]<0.2048>',
        (
            BodySection(
                peek=True,
                part=(2,),
                text=SectionText.HEADER_FIELDS_NOT,
                fields=(b"Received", b"X-Spam"),
                partial=(0, 2048),
            ),
        ),
    ),
    (b"BODY[]<100.1>", (BodySection(partial=(100, 1)),)),
    (b"BINARY[]", (BinarySection(),)),
    (b"BINARY[1]", (BinarySection(part=(1,)),)),
    (b"binary.peek[1.2.3]<0.1024>", (BinarySection((1, 2, 3), peek=True, partial=(0, 1024)),)),
    (b"BINARY[2]<7.9>", (BinarySection((2,), partial=(7, 9)),)),
    (b"BINARY.SIZE[4.1]", (BinarySection((4, 1), size=True),)),
    (
        b"(UID BINARY.SIZE[1] BINARY.PEEK[1])",
        (FetchItem.UID, BinarySection((1,), size=True), BinarySection((1,), peek=True)),
    ),
    (b"(UID FLAGS)", (FetchItem.UID, FetchItem.FLAGS)),
    (
        b"(FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
        (FetchItem.FLAGS, BodySection(text=SectionText.HEADER_FIELDS, fields=(b"DATE", b"FROM"))),
    ),
]


@pytest.mark.parametrize(("text", "attributes"), FETCH_ATTRIBUTES)
def test_fetch_attributes(text: bytes, attributes: tuple[FetchAttribute, ...]) -> None:
    assert one(b"f FETCH 2:4 " + text + b"\r\n") == FetchCommand(
        b"f", False, seq((2, 4)), attributes
    )


def test_uid_fetch() -> None:
    assert one(b"A999 UID FETCH 4827313:4828442 FLAGS\r\n") == FetchCommand(
        b"A999", True, seq((4827313, 4828442)), (FetchItem.FLAGS,)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"1", seq((1, 1))),
        (b"*", seq(("*", "*"))),
        (b"1:*", seq((1, "*"))),
        (b"*:4", seq(("*", 4))),
        (b"4:2", seq((4, 2))),
        (b"2,4:7,9,12:*", seq((2, 2), (4, 7), (9, 9), (12, "*"))),
        (b"4294967295", seq((4294967295, 4294967295))),
    ],
)
def test_sequence_sets(text: bytes, expected: SequenceSet) -> None:
    assert one(b"c COPY " + text + b" x\r\n") == CopyCommand(b"c", False, expected, b"x")


@pytest.mark.parametrize(
    "data",
    [
        b"a FETCH 1\r\n",
        b"a FETCH 1 \r\n",
        b"a FETCH 1 FOO\r\n",
        b"a FETCH 1 ()\r\n",
        b"a FETCH 1 (ALL)\r\n",
        b"a FETCH 1 (FLAGS\r\n",
        b"a FETCH 1 (FLAGS  UID)\r\n",
        b"a FETCH 1 BODY.PEEK\r\n",
        b"a FETCH 1 BODY[MIME]\r\n",
        b"a FETCH 1 BODY[1.]\r\n",
        b"a FETCH 1 BODY[0]\r\n",
        b"a FETCH 1 BODY[1.HEADER.FIELDS]\r\n",
        b"a FETCH 1 BODY[HEADER.FIELDS ()]\r\n",
        b"a FETCH 1 BODY[]<0.0>\r\n",
        b"a FETCH 1 BODY[]<0>\r\n",
        b"a FETCH 1 BODY[HEADER\r\n",
        b"a FETCH 4294967296 FLAGS\r\n",
        # RFC 3516 section 7: section-binary = "[" [section-part] "]"
        b"a FETCH 1 BINARY[1.TEXT]\r\n",
        b"a FETCH 1 BINARY[TEXT]\r\n",
        b"a FETCH 1 BINARY[HEADER]\r\n",
        b"a FETCH 1 BINARY[1.MIME]\r\n",
        b"a FETCH 1 BINARY[1.HEADER.FIELDS (FROM)]\r\n",
        b"a FETCH 1 BINARY[0]\r\n",
        b"a FETCH 1 BINARY[1.]\r\n",
        b"a FETCH 1 BINARY[.1]\r\n",
        b"a FETCH 1 BINARY[1\r\n",
        b"a FETCH 1 BINARY\r\n",
        b"a FETCH 1 BINARY.PEEK\r\n",
        b"a FETCH 1 BINARY.SIZE\r\n",
        b"a FETCH 1 BINARY.SIZE[1]<0.10>\r\n",  # no partial on the size
        b"a FETCH 1 BINARY.SIZE.PEEK[1]\r\n",
        b"a FETCH 1 BINARY[1]<0.0>\r\n",
        b"a FETCH 1 BINARY[1]<5>\r\n",
        b"a FETCH 1 BINARY [1]\r\n",
        b"a FETCH 1 BINARY[4294967296]\r\n",
    ],
)
def test_fetch_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


# --------------------------------------------------------------------------- STORE

STORES: list[tuple[bytes, StoreCommand]] = [
    (
        b"A003 STORE 2:4 +FLAGS (\\Deleted)",
        StoreCommand(b"A003", False, seq((2, 4)), "add", False, (b"\\Deleted",)),
    ),
    (
        b"A3 UID STORE 1 -FLAGS.SILENT (\\seen $Junk)",
        StoreCommand(b"A3", True, seq((1, 1)), "remove", True, (b"\\Seen", b"$Junk")),
    ),
    (b"A3 STORE * FLAGS ()", StoreCommand(b"A3", False, seq(("*", "*")), "replace", False, ())),
    (
        b"A3 store 1 flags.silent \\Answered \\X-Ext kw",
        StoreCommand(
            b"A3", False, seq((1, 1)), "replace", True, (b"\\Answered", b"\\X-Ext", b"kw")
        ),
    ),
]


@pytest.mark.parametrize(("data", "expected"), STORES)
def test_store(data: bytes, expected: StoreCommand) -> None:
    assert one(data + b"\r\n") == expected


@pytest.mark.parametrize(
    "data",
    [
        b"a STORE 1 FLAGS\r\n",
        b"a STORE 1 +FLAGS \r\n",
        b"a STORE 1 *FLAGS (x)\r\n",
        b"a STORE 1 FLAGS.LOUD (x)\r\n",
        b"a STORE 1 FLAGS (\\*)\r\n",
        b'a STORE 1 FLAGS ("x")\r\n',
        b"a STORE 1 FLAGS (a b\r\n",
    ],
)
def test_store_bad(data: bytes) -> None:
    assert bad(data).tag == b"a"


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("data", "tag"),
    [
        (b"\r\n", None),
        (b"   \r\n", None),
        (b"\x01\x02\x03\r\n", None),
        (b"+ NOOP\r\n", None),
        (b"* NOOP\r\n", None),
        (b"(a) NOOP\r\n", None),
        (b'"a" NOOP\r\n', None),
        (b"abc\r\n", b"abc"),
        (b"abc \r\n", b"abc"),
        (b"a  NOOP\r\n", b"a"),
        (b"a NOOP \r\n", b"a"),
        (b"a NOOP extra\r\n", b"a"),
        (b"a FROBNICATE\r\n", b"a"),
        (b"a UID\r\n", b"a"),
        (b"a UID LOGIN x y\r\n", b"a"),
        (b"a UID NOOP\r\n", b"a"),
        (b"a NO\x00OP\r\n", b"a"),
        (b"\x00\r\n", None),
        (b"a SELECT caf\xc3\xa9\r\n", b"a"),
        (b'a SELECT "caf\xc3\xa9"\r\n', b"a"),
        (b"a\xff NOOP\r\n", None),
        (b"a NOOP\n", b"a"),
        (b"a NOOP\r\r\n", b"a"),
        (b'a LOGIN "unterminated\r\n', b"a"),
        (b'a LOGIN "bad\\escape" x\r\n', b"a"),
        (b"a LOGIN {3}x\r\n", b"a"),
        (b"a LOGIN x\r\n", b"a"),
        (b"a STATUS INBOX (FOO)\r\n", b"a"),
        (b"a STATUS INBOX ()\r\n", b"a"),
        (b"a LIST (\r\n", b"a"),
        (b'a LIST "" ()\r\n', b"a"),
        (b'a LIST "" ("a" ("b"))\r\n', b"a"),
        (b'a LIST (RECURSIVEMATCH) "" "*"\r\n', b"a"),
        (b'a LIST (REMOTE RECURSIVEMATCH) "" "*"\r\n', b"a"),
        (b'a LIST (SPECIAL-USE RECURSIVEMATCH) "" "*"\r\n', b"a"),
        (b'a LIST (FOO) "" "*"\r\n', b"a"),
        (b'a LIST "" "*" RETURN (FOO)\r\n', b"a"),
        (b'a LIST "" "*" RETURN (STATUS)\r\n', b"a"),
        (b'a LIST "" "*" RETURN (STATUS ())\r\n', b"a"),
        (b'a LIST "" "*" RETURN (STATUS (MESSAGES FOO))\r\n', b"a"),
        (b'a LIST "" "*" RETURN (CHILDREN) x\r\n', b"a"),
        (b"a CREATE x (FOO)\r\n", b"a"),
        (b"a CREATE x (USE)\r\n", b"a"),
        (b"a CREATE x (USE \\Sent)\r\n", b"a"),
        (b"a CREATE x ()\r\n", b"a"),
        (b"a GETQUOTA\r\n", b"a"),
        (b"a GETQUOTA a b\r\n", b"a"),
        (b"a GETQUOTAROOT\r\n", b"a"),
        (b"a SETQUOTA x (STORAGE 1)\r\n", b"a"),
        (b'a LIST "" x RETURN\r\n', b"a"),
        (b"a ENABLE\r\n", b"a"),
        (b'a ID ("x")\r\n', b"a"),
        (b"a ID\r\n", b"a"),
        (b"a AUTHENTICATE\r\n", b"a"),
        (b"a AUTHENTICATE PLAIN abc\r\n", b"a"),
        (b"a AUTHENTICATE PLAIN ====\r\n", b"a"),
        (b"a COPY 1\r\n", b"a"),
        (b"a EXPUNGE 1\r\n", b"a"),
        (b"a UID EXPUNGE\r\n", b"a"),
        (b"a RENAME x\r\n", b"a"),
    ],
)
def test_bad_command(data: bytes, tag: bytes | None) -> None:
    result = bad(data)
    assert result.tag == tag
    assert result.text.isascii()
    assert "\r" not in result.text
    assert "\n" not in result.text


# --------------------------------------------------------------------------- leniency


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # aioimaplib's ID: spaces inside the parentheses (Dovecot accepts them too).
        (
            b'a ID ( "name" "aioimaplib" "version" "2.0" )\r\n',
            IdCommand(b"a", ((b"name", b"aioimaplib"), (b"version", b"2.0"))),
        ),
        (b'a ID (  "os" NIL)\r\n', IdCommand(b"a", ((b"os", None),))),
        (b'a ID ("os" NIL   )\r\n', IdCommand(b"a", ((b"os", None),))),
        (b"a ID ( )\r\n", IdCommand(b"a", ())),
        (
            b"a STORE 1 +FLAGS ( \\Seen $Junk )\r\n",
            StoreCommand(b"a", False, seq((1, 1)), "add", False, (b"\\Seen", b"$Junk")),
        ),
        (b"a STORE 1 FLAGS ( )\r\n", StoreCommand(b"a", False, seq((1, 1)), "replace", False, ())),
        (
            b"a UID STORE 7 -FLAGS.SILENT (\\Deleted )\r\n",
            StoreCommand(b"a", True, seq((7, 7)), "remove", True, (b"\\Deleted",)),
        ),
    ],
)
def test_spaces_inside_id_and_flag_list_parentheses(data: bytes, expected: Event) -> None:
    assert one(data) == expected


def test_spaces_inside_append_flag_list() -> None:
    data = b"a APPEND INBOX ( \\Seen \\Draft ) {3}\r\nabc\r\n"
    assert check(data) == [
        AppendCommand(b"a", (b"\\Seen", b"\\Draft"), None, 3, True, mailbox=b"INBOX"),
        LiteralChunk(b"abc"),
        AppendEnd(b"a"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        # Between elements exactly one SP, as before: two could hide a lost element.
        b'a ID ("name"  "x")\r\n',
        b'a ID ("name" "x"  "os" NIL)\r\n',
        b"a STORE 1 FLAGS (\\Seen  \\Draft)\r\n",
        # No spaces outside the parentheses, and no list left open.
        b'a ID  ("name" "x")\r\n',
        b'a ID ("name" "x" \r\n',
        b"a STORE 1 FLAGS ( \r\n",
        b"a STORE 1 FLAGS (\\Seen )x\r\n",
        b"a APPEND INBOX (\\Seen  \\Draft) {3}\r\n",
    ],
)
def test_spaces_still_refused_where_ambiguous(data: bytes) -> None:
    assert bad(data).tag == b"a"


def test_charset_must_be_ascii() -> None:
    assert bad(b"a SEARCH CHARSET {3+}\r\n\xff\xfe\xfd ALL\r\n").tag == b"a"


# --------------------------------------------------------------------------- UTF8=ACCEPT (RFC 9755)


def utf8(data: bytes, mode: Utf8 = Utf8.ACCEPT) -> Command:
    """``data`` parsed as in a session that enabled UTF8=ACCEPT (or IMAP4rev2)."""
    return parse_command(data, 32, 100, utf8=mode)


def test_utf8_quoted_strings_after_enable() -> None:
    assert utf8('a CREATE "Größe & Ünï"\r\n'.encode()) == CreateCommand(
        b"a", "Größe & Ünï".encode()
    )
    assert utf8('a SEARCH SUBJECT "café"\r\n'.encode()) == SearchCommand(
        b"a", False, None, HeaderKey(b"SUBJECT", "café".encode())
    )
    sort = utf8('a SORT (DATE) utf-8 SUBJECT "café"\r\n'.encode())
    assert isinstance(sort, SortCommand)
    assert sort.charset == "UTF-8"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b'a CREATE "Gr\xc3"\r\n', "invalid UTF-8 in a quoted string"),
        (b'a CREATE "\xed\xa0\x80"\r\n', "invalid UTF-8 in a quoted string"),  # a surrogate
        (b"a CREATE Gr\xc3\xb6\r\n", "unexpected characters at the end"),  # atoms stay 7-bit
        (b"a SEARCH CHARSET UTF-8 ALL\r\n", "no CHARSET after ENABLE UTF8=ACCEPT"),
        (b"a SORT (DATE) US-ASCII ALL\r\n", "the charset must be UTF-8 after ENABLE UTF8=ACCEPT"),
        (
            b"a THREAD REFERENCES ISO-8859-1 ALL\r\n",
            "the charset must be UTF-8 after ENABLE UTF8=ACCEPT",
        ),
    ],
)
def test_utf8_refused_after_enable(data: bytes, text: str) -> None:
    with pytest.raises(ParseError, match=text):
        utf8(data)


def test_imap4rev2_takes_utf8_and_charset_labels() -> None:
    """RFC 9051 sections 4.3.1 and 6.4.4: UTF-8 quoted strings, and SEARCH keeps its
    CHARSET (UTF8=ACCEPT's ban on it does not apply)."""
    rev2 = Utf8.REV2
    assert utf8('a CREATE "Größe"\r\n'.encode(), rev2) == CreateCommand(b"a", "Größe".encode())
    search = utf8('a SEARCH CHARSET UTF-8 SUBJECT "café"\r\n'.encode(), rev2)
    assert search == SearchCommand(b"a", False, "UTF-8", HeaderKey(b"SUBJECT", "café".encode()))
    sort = utf8(b"a SORT (DATE) US-ASCII ALL\r\n", rev2)
    assert isinstance(sort, SortCommand)
    assert sort.charset == "US-ASCII"
    with pytest.raises(ParseError, match="invalid UTF-8 in a quoted string"):
        utf8(b'a CREATE "Gr\xc3"\r\n', rev2)


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (b"a SEARCH LARGER 4294967296\r\n", 4294967296),
        (b"a SEARCH SMALLER 9223372036854775807\r\n", 9223372036854775807),
    ],
)
def test_sizes_are_number64(data: bytes, size: int) -> None:
    """RFC 9051 section 9: LARGER, SMALLER and partial octets are ``number64``."""
    command = parse_command(data, 32, 100)
    assert isinstance(command, SearchCommand)
    assert isinstance(command.key, SizeKey)
    assert command.key.size == size


def test_partial_octets_are_number64() -> None:
    command = parse_command(b"a FETCH 1 BODY[]<4294967296.9223372036854775807>\r\n", 32, 100)
    assert isinstance(command, FetchCommand)
    section = command.attributes[0]
    assert isinstance(section, BodySection)
    assert section.partial == (4294967296, 9223372036854775807)


def test_receiver_takes_utf8_quoted_only_after_accept_utf8() -> None:
    data = 'a CREATE "Größe"\r\n'.encode()
    r = Receiver()
    r.receive_data(data)
    assert isinstance(r.next_event(), BadCommand)
    r.accept_utf8(Utf8.ACCEPT)
    r.receive_data(data + b"b NOOP\r\n")
    assert r.next_event() == CreateCommand(b"a", "Größe".encode())
    assert r.next_event() == NoopCommand(b"b")
    r.receive_data(b"c CREATE {1+}\r\n")
    assert r.next_event() is NEED_DATA
    with pytest.raises(LocalProtocolError):
        r.accept_utf8(Utf8.ACCEPT)  # only between commands
