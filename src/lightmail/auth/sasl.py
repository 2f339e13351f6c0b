"""SASL PLAIN (RFC 4616) and LOGIN, decoded once for IMAP and POP3.

Sans-I/O: a :class:`SaslExchange` says which challenge to send next and takes
the client's responses as the base64 text it sent; the session only carries
them over its wire (IMAP ``AUTHENTICATE`` with SASL-IR, RFC 4959; POP3
``AUTH``, RFC 5034). One set of rules for both:

- base64 is strict (RFC 4648 section 4): characters outside the alphabet,
  missing padding and data after padding are refused; ``""`` and ``"="`` are
  the empty response;
- PLAIN is ``[authzid] NUL authcid NUL passwd`` in UTF-8 with a non-empty
  authcid and password (RFC 4616 section 2); an authzid other than the
  authcid (acting as another user) is refused;
- LOGIN's user name and password are UTF-8 too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass

MECHANISMS = ("PLAIN", "LOGIN")

# LOGIN's two challenges, base64 as sent (draft-murchison-sasl-login).
_LOGIN_CHALLENGES = (
    base64.b64encode(b"Username:").decode(),
    base64.b64encode(b"Password:").decode(),
)


class SaslError(ValueError):
    """The client's SASL exchange cannot give credentials."""


class UnsupportedMechanism(SaslError):
    """The client asked for a mechanism that is not offered."""


class InvalidBase64(SaslError):
    """A response is not strict base64."""


class InvalidCredentials(SaslError):
    """A decoded response does not have the mechanism's form."""


class AuthzidRefused(InvalidCredentials):
    """PLAIN asked to act as another user (an authzid other than the authcid)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


def decode_sasl(data: str | bytes) -> bytes | None:
    """Strict base64 (RFC 4648 section 4); None if it is not.

    Characters outside the alphabet, missing padding and padding anywhere but
    at the end are rejected. ``""`` and ``"="`` are the empty response.
    """
    try:
        raw = data.encode("ascii") if isinstance(data, str) else data
        if raw in (b"", b"="):
            return b""
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def parse_plain(message: bytes) -> Credentials:
    """RFC 4616 section 2: ``[authzid] NUL authcid NUL passwd``."""
    try:
        authzid, authcid, password = message.decode("utf-8").split("\0")
    except (UnicodeDecodeError, ValueError):
        raise InvalidCredentials("not [authzid] NUL authcid NUL passwd in UTF-8") from None
    if not authcid or not password:
        raise InvalidCredentials("empty authcid or password")
    if authzid and authzid != authcid:
        raise AuthzidRefused("authorization as another user")
    return Credentials(authcid, password)


class SaslExchange:
    """One authentication exchange: challenges out, responses in, then credentials.

    Feed the initial response (if any) to :meth:`respond`, then while
    :attr:`credentials` is None send :meth:`challenge` and feed the answer.
    """

    def __init__(self, mechanism: str, offered: Collection[str] = MECHANISMS) -> None:
        mechanism = mechanism.upper()
        if mechanism not in offered or mechanism not in MECHANISMS:
            raise UnsupportedMechanism(mechanism)
        self.mechanism = mechanism
        self._responses: list[bytes] = []
        self.credentials: Credentials | None = None

    def challenge(self) -> str:
        """The next challenge, base64 as sent (PLAIN's is empty)."""
        if self.credentials is not None:
            raise RuntimeError("the exchange is complete")
        if self.mechanism == "PLAIN":
            return ""
        return _LOGIN_CHALLENGES[len(self._responses)]

    def respond(self, response: str | bytes) -> Credentials | None:
        """Take one response as sent; the credentials once they are complete."""
        decoded = decode_sasl(response)
        if decoded is None:
            raise InvalidBase64("invalid base64 in the SASL response")
        self._responses.append(decoded)
        if self.mechanism == "PLAIN":
            self.credentials = parse_plain(decoded)
        elif len(self._responses) == len(_LOGIN_CHALLENGES):
            try:
                username, password = (r.decode("utf-8") for r in self._responses)
            except UnicodeDecodeError:
                raise InvalidCredentials("LOGIN user name or password not UTF-8") from None
            self.credentials = Credentials(username, password)
        return self.credentials
