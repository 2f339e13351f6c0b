"""SASL PLAIN and LOGIN as IMAP and POP3 decode them: one set of rules."""

from __future__ import annotations

import base64

import pytest

from lightmail.auth.sasl import (
    AuthzidRefused,
    Credentials,
    InvalidBase64,
    InvalidCredentials,
    SaslExchange,
    UnsupportedMechanism,
    parse_plain,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("response", [b64(b"\0alice\0secret"), b64(b"\0alice\0secret").encode()])
def test_plain_with_initial_response(response: str | bytes) -> None:
    exchange = SaslExchange("plain")
    assert exchange.respond(response) == Credentials("alice", "secret")
    assert exchange.credentials == Credentials("alice", "secret")


def test_plain_without_initial_response_sends_an_empty_challenge() -> None:
    exchange = SaslExchange("PLAIN")
    assert exchange.challenge() == ""
    assert exchange.respond(b64(b"alice\0alice\0secret")) == Credentials("alice", "secret")
    with pytest.raises(RuntimeError):
        exchange.challenge()


def test_login_asks_for_user_then_password() -> None:
    exchange = SaslExchange("LOGIN")
    assert base64.b64decode(exchange.challenge()) == b"Username:"
    assert exchange.respond(b64(b"alice")) is None
    assert base64.b64decode(exchange.challenge()) == b"Password:"
    assert exchange.respond(b64("sécret".encode())) == Credentials("alice", "sécret")


def test_login_initial_response_is_the_user_name() -> None:
    exchange = SaslExchange("LOGIN")
    assert exchange.respond(b64(b"alice")) is None
    assert base64.b64decode(exchange.challenge()) == b"Password:"


def test_login_refuses_names_that_are_not_utf8() -> None:
    exchange = SaslExchange("LOGIN")
    exchange.respond(b64(b"\xffalice"))
    with pytest.raises(InvalidCredentials):
        exchange.respond(b64(b"secret"))


@pytest.mark.parametrize("mechanism", ["CRAM-MD5", "XOAUTH2", ""])
def test_unknown_mechanisms_are_refused(mechanism: str) -> None:
    with pytest.raises(UnsupportedMechanism):
        SaslExchange(mechanism)


def test_a_mechanism_not_offered_is_refused() -> None:
    with pytest.raises(UnsupportedMechanism):
        SaslExchange("LOGIN", offered=("PLAIN",))


@pytest.mark.parametrize("response", ["QQ", "QQ=", "=AAA", "QU FB", "QUF*", "ä", b"\xff"])
def test_responses_must_be_strict_base64(response: str | bytes) -> None:
    with pytest.raises(InvalidBase64):
        SaslExchange("PLAIN").respond(response)


@pytest.mark.parametrize(
    "message",
    [
        b"",  # "=": the empty response
        b"alice\0secret",  # one NUL
        b"\0alice\0secret\0more",  # three
        b"\0\0secret",  # empty authcid
        b"\0alice\0",  # empty password
        b"\0al\xffice\0secret",  # not UTF-8
    ],
)
def test_plain_refuses_malformed_messages(message: bytes) -> None:
    with pytest.raises(InvalidCredentials):
        parse_plain(message)
    with pytest.raises(InvalidCredentials):
        SaslExchange("PLAIN").respond(b64(message) if message else "=")


def test_plain_refuses_acting_as_another_user() -> None:
    with pytest.raises(AuthzidRefused):
        parse_plain(b"bob\0alice\0secret")


def test_credentials_hide_the_password() -> None:
    assert "secret" not in repr(Credentials("alice", "secret"))
