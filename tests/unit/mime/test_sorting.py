"""What SORT and THREAD compare: RFC 5256 section 2.1's base subject, RFC 5051's
i;unicode-casemap, normalized msg-ids, and the keys of a whole message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.mailstore.mime.addresses import parse_envelope
from lightmail.mailstore.mime.headers import header_fields
from lightmail.mailstore.mime.sorting import (
    MAX_REFERENCES,
    base_subject,
    casemap,
    message_ids,
    sort_keys,
)
from lightmail.mailstore.mime.types import SortKeys


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("Hello", "Hello", False),
        ("", "", False),
        ("Re: Hello", "Hello", True),
        ("RE: Hello", "Hello", True),
        ("re:Hello", "Hello", True),
        ("Fw: Hello", "Hello", True),
        ("FWD: Hello", "Hello", True),
        ("Re: Re: Fwd: Hello", "Hello", True),
        ("Re [2]: Hello", "Hello", True),  # subj-refwd with a blob before ":"
        ("Re:  \t Hello  \t", "Hello", True),  # (1) white space, (2) trailing
        ("Hello (fwd)", "Hello", True),  # (2) subj-trailer
        ("Hello (FWD) (fwd)  ", "Hello", True),
        ("[list] Hello", "Hello", False),  # (4) a blob, the rest not empty
        ("[list] [tag] Re: Hello", "Hello", True),  # (3) blobs then subj-refwd
        ("[list]", "[list]", False),  # (4) removing it would leave nothing
        ("[list] [tag]", "[tag]", False),
        ("Re: [list]", "[list]", True),
        ("[Fwd: Hello]", "Hello", True),  # (6) subj-fwd-hdr and subj-fwd-trl
        ("[fwd: Re: [list] Hello (fwd)]", "Hello", True),  # (6) then again from (2)
        ("[Fwd: Hello] extra", "extra", False),  # (4): "[Fwd: Hello] " is a blob
        ("Real estate", "Real estate", False),  # "re" without ":" is no leader
        ("Re: Re:", "", True),
        ("Hello [world]", "Hello [world]", False),
        ("résumé (fwd)", "résumé", True),
    ],
)
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


@pytest.mark.parametrize(
    "subject",
    [
        "Re:" * 100_000,
        "[a]" * 100_000 + "x",
        "[a]" * 100_000 + "re [" + "x" * 100_000,
        "[fwd:" * 50_000 + "x" + "]" * 50_000,
        "(fwd)" * 100_000,
        "[" * 100_000,
        "]" * 100_000,
        " " * 100_000,
    ],
)
def test_hostile_subjects_take_linear_time(subject: str) -> None:
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base


@given(st.text(alphabet=st.sampled_from(list("rRefFwWdD[]():xX \t")), max_size=60))
def test_base_subject_is_idempotent_on_subject_syntax(subject: str) -> None:
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base


@given(st.text())
def test_base_subject_and_casemap_never_raise(subject: str) -> None:
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base
    assert casemap(casemap(base)) == casemap(base)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("hello", "HELLO"),
        ("café", "CAFÉ"),
        ("café", "cafe\u0301"),  # canonical decomposition
        ("ǆemal", "ǅemal"),  # a titlecase letter
        ("ﬁle", "FILE"),  # a compatibility decomposition
        ("\uff21\uff42\uff43", "ABC"),  # full-width forms
        ("ΣΊΣΥΦΟΣ", "σίσυφος"),
    ],
)
def test_casemap_equates(a: str, b: str) -> None:
    assert casemap(a) == casemap(b)


def test_casemap_keeps_what_has_no_simple_mapping() -> None:
    assert casemap("straße") == "STRAßE"  # ß has no simple titlecase mapping
    assert casemap("Émile") < casemap("Zoe")  # "E" + combining accent sorts with E
    assert casemap("") == ""


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ("<a@example.org>", ["a@example.org"]),
        ('<"01KF8JCEOCBS0045PS"@xxx.yyy.com>', ["01KF8JCEOCBS0045PS@xxx.yyy.com"]),
        ("<a@x> <b@x>\t<c@x>", ["a@x", "b@x", "c@x"]),
        ("<a@x>,<b@x>", ["a@x", "b@x"]),
        ("(comment <x@y>) <a@x>", ["a@x"]),
        ('"quoted <x@y>" <a@x>', ["a@x"]),
        ("<a (comment) @ x>", ["a@x"]),
        ("<Case@X>", ["Case@X"]),
        ("<a@x> from Bob <bob@example.org>", ["a@x", "bob@example.org"]),
        ("<no-at-sign>", []),
        ("<@x>", []),
        ("<a@>", []),
        ("<a@x", []),
        ("<a<b@x>", ["b@x"]),
        ('<"a b"@x>', []),  # white space in the id
        ("<" + "a" * 1000 + "@x>", []),
        ("", []),
        ("junk", []),
    ],
)
def test_message_ids(value: str, ids: list[str]) -> None:
    assert message_ids(value) == ids


@given(st.text())
def test_message_ids_never_raise(value: str) -> None:
    for msg_id in message_ids(value):
        assert "@" in msg_id
        assert " " not in msg_id


def _keys(header: bytes) -> SortKeys:
    fields = header_fields(header)
    return sort_keys(parse_envelope(fields), fields)


def test_sort_keys_of_a_message() -> None:
    keys = _keys(
        b"From: =?UTF-8?Q?=C3=89mile_Zola?= <emile@example.org>, b@example.org\r\n"
        b"To: undisclosed-recipients:;\r\n"
        b"Cc: carol@example.net\r\n"
        b"Subject: =?UTF-8?Q?Re:_[list]_caf=C3=A9?=\r\n"
        b'Message-ID: <"m1"@example.org>\r\n'
        b"In-Reply-To: <ignored@x>\r\n"
        b"References: <r1@x>\r\n <r2@x>\r\n"
        b"\r\n"
    )
    assert keys == SortKeys(
        subject=casemap("café"),
        reply=True,
        from_="EMILE",
        to="UNDISCLOSED-RECIPIENTS",  # a group: its name is the first addr-mailbox
        cc="CAROL",
        display_from=casemap("Émile Zola"),
        display_to="UNDISCLOSED-RECIPIENTS",
        message_id="m1@example.org",
        references=("r1@x", "r2@x"),
    )


def test_sort_keys_without_fields() -> None:
    assert _keys(b"X-Nothing: here\r\n\r\n") == SortKeys("", False, "", "", "", "", "", "", ())


def test_in_reply_to_counts_only_without_valid_references() -> None:
    header = b"References: <broken\r\nIn-Reply-To: <p@x> <q@x>\r\nFrom: Zed <z@x>\r\n\r\n"
    keys = _keys(header)
    assert keys.references == ("p@x",)  # the first only
    assert keys.display_from == "ZED"


def test_display_value_falls_back_to_the_address() -> None:
    assert _keys(b"From: <z@x>\r\nTo: z\r\n\r\n").display_from == "Z@X"
    assert _keys(b'From: "" <z@x>\r\n\r\n').display_from == "Z@X"


def test_references_are_capped_to_the_last_ones() -> None:
    references = " ".join(f"<r{n}@x>" for n in range(MAX_REFERENCES + 50))
    keys = _keys(f"References: {references}\r\n\r\n".encode())
    assert len(keys.references) == MAX_REFERENCES
    assert keys.references[-1] == f"r{MAX_REFERENCES + 49}@x"
