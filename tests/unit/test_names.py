"""Mailbox name validation and INBOX normalisation (RFC 3501 section 5.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.errors import InvalidMailboxName
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
