"""Mailbox name validation, INBOX normalisation (RFC 3501 section 5.1) and LIST
pattern matching (section 6.3.8)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightmail.errors import InvalidMailboxName, PatternTooComplex
from lightmail.mailstore import names


@pytest.mark.parametrize(
    ("given_name", "expected"),
    [
        ("inbox", "INBOX"),
        ("InBoX/Sub", "INBOX/Sub"),
        ("Inboxes", "Inboxes"),
        ("Work/inbox", "Work/inbox"),
        ("Entwürfe", "Entwürfe"),
    ],
)
def test_normalize(given_name: str, expected: str) -> None:
    assert names.normalize(given_name) == expected


@pytest.mark.parametrize(
    "bad", ["", "/", "a/", "/a", "a//b", "a*b", "a%", "a\x00b", "a\r\nb", "x" * 1001]
)
def test_bad_names_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(InvalidMailboxName) as caught:
        names.normalize(bad)
    assert caught.value.reason


def test_parents() -> None:
    assert names.parents("a/b/c") == ["a", "a/b"]
    assert names.parents("a") == []


@given(st.text(max_size=50))
def test_normalize_either_accepts_idempotently_or_refuses(name: str) -> None:
    try:
        normal = names.normalize(name)
    except InvalidMailboxName:
        return
    assert names.normalize(normal) == normal


def _regex(reference: str, pattern: str) -> re.Pattern[str]:
    """The matcher LIST used until issue #14, kept as the model of what a pattern
    means: one backtracking regex per pattern (fine for the short strings here)."""
    full = pattern if pattern.startswith("/") or not reference else reference + pattern
    levels = full.split("/")
    if levels[0].upper() == "INBOX":
        levels[0] = "INBOX"
    regex = ""
    for char in "/".join(levels):
        if char == "*":
            regex += ".*"
        elif char == "%":
            regex += "[^/]*"
        else:
            regex += re.escape(char)
    return re.compile(regex, re.DOTALL)


@pytest.mark.parametrize(
    ("reference", "pattern", "name", "expected"),
    [
        ("", "*", "a/b/c", True),
        ("", "%", "a", True),
        ("", "%", "a/b", False),
        ("", "a/%", "a/b", True),
        ("", "a/%", "a/b/c", False),
        ("", "%/%", "a/b", True),
        ("", "a*", "a/b/c", True),
        ("", "a%", "ab", True),
        ("", "a%", "a", True),  # a wildcard may match nothing
        ("", "*%", "a/b", True),
        ("", "%*", "a/b", True),
        ("", "%%", "a/b", False),
        ("", "a*c", "abc/xc", True),
        ("", "a%c", "ab/c", False),
        ("", "a*b*c", "abba/cab", False),
        ("", "a", "ab", False),
        ("", "ab", "a", False),
        ("", "inbox", "INBOX", True),
        ("", "InBoX/%", "INBOX/Sent", True),
        ("", "inbox*", "INBOX", False),  # only a whole first level is INBOX
        ("a/", "%", "a/b", True),  # the reference prefixes the pattern
        ("a/", "%", "b", False),
        ("a/", "/b", "/b", True),  # unless the pattern is rooted
        ("", "Entw*", "Entwürfe", True),
        ("", "*.*", "a\nb.c", True),  # "*" matches any character
    ],
)
def test_pattern_matches(reference: str, pattern: str, name: str, expected: bool) -> None:
    assert names.MailboxPattern(reference, pattern).matches(name) is expected
    assert bool(_regex(reference, pattern).fullmatch(name)) is expected


_PATTERNS = st.text(alphabet="ab/*%", max_size=10)


@settings(max_examples=1000)
@given(
    st.sampled_from(["", "a/", "INBOX/", "*"]) | st.text(alphabet="ab/*%", max_size=4),
    st.sampled_from(["", "inbox", "INBOX/", "/"]).flatmap(lambda head: _PATTERNS.map(head.__add__)),
    st.text(alphabet="ab/", max_size=12)
    | st.sampled_from(["INBOX", "INBOX/a", "inbox/b"]).flatmap(
        lambda head: st.text(alphabet="ab/", max_size=4).map(head.__add__)
    ),
)
def test_pattern_matches_as_the_regex_did(reference: str, pattern: str, name: str) -> None:
    expected = bool(_regex(reference, pattern).fullmatch(name))
    assert names.MailboxPattern(reference, pattern).matches(name) is expected


def test_long_name_and_many_wildcards() -> None:
    """Issue #14: what the regex backtracked on for seconds is one linear pass now."""
    name = "a" * 999
    assert not names.MailboxPattern("", "*a" * 19 + "*b").matches(name)
    assert names.MailboxPattern("", "*a" * 20).matches(name)
    assert not names.MailboxPattern("", "%a" * 19 + "%b").matches(name)
    deep = "/".join(["a" * 9] * 100)
    assert names.MailboxPattern("", "%a/" * 10 + "*a").matches(deep)
    assert not names.MailboxPattern("", "%a/" * 19 + "%b").matches(deep)
    assert not names.MailboxPattern("", "a" * 1000 + "*").matches(name)


def test_wildcards_past_the_cap_are_refused() -> None:
    at_cap = "*%" * (names.MAX_PATTERN_WILDCARDS // 2)
    assert names.MailboxPattern("", at_cap).matches("a/b")
    with pytest.raises(PatternTooComplex) as caught:
        names.MailboxPattern("", at_cap + "*")
    assert caught.value.limit == names.MAX_PATTERN_WILDCARDS
    assert caught.value.wildcards == names.MAX_PATTERN_WILDCARDS + 1
    with pytest.raises(PatternTooComplex):  # the reference is part of the pattern
        names.MailboxPattern("%", at_cap)
    names.MailboxPattern("%", "/" + at_cap)  # ...unless a rooted pattern replaces it


@pytest.mark.parametrize(
    ("reference", "pattern", "expected"),
    [("", "%", True), ("", "a/%", True), ("a/", "%", True), ("", "*", False), ("", "%*", False)],
)
def test_ends_with_percent(reference: str, pattern: str, expected: bool) -> None:
    assert names.MailboxPattern(reference, pattern).ends_with_percent is expected
