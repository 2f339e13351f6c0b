"""Protocol-neutral errors.

The mailstore, accounts and storage layers raise these; each protocol maps them
to its own replies in one place (IMAP ``NO [UNAVAILABLE]``, LMTP ``451 4.3.0``,
POP3 ``-ERR [SYS/TEMP]``). Nothing here formats a reply.
"""

from __future__ import annotations


class LightMailError(Exception):
    """Base class of every error LightMail raises on purpose."""


class TemporaryFailure(LightMailError):
    """A dependency (database, blob store, clamd, bus) is down or timed out.

    The operation may succeed if retried later; nothing was half done.
    """


class TransactionConflict(TemporaryFailure):
    """The database broke a deadlock or a lock wait ran out: this transaction was
    rolled back, and running it again is expected to succeed.

    ``retryable`` is false for a lock wait that ran out, which has already made
    the client wait long (``innodb_lock_wait_timeout``).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class CommitOutcomeUnknown(TemporaryFailure):
    """The database connection failed while a COMMIT was under way: the server may
    have committed the transaction or not, and did not say which.

    Whatever the transaction wrote may be visible, so nothing it refers to (a
    message blob) may be deleted; the caller can look on a new connection.
    """


class PermanentFailure(LightMailError):
    """The request cannot succeed as made; retrying it unchanged will fail again."""


class MailboxNotFound(PermanentFailure):
    """The named mailbox does not exist.

    ``try_create`` says whether creating it would let the operation succeed
    (IMAP's ``[TRYCREATE]``, RFC 3501 section 6.4.7).
    """

    def __init__(self, name: str, *, try_create: bool = False) -> None:
        super().__init__(f"mailbox {name!r} does not exist")
        self.name = name
        self.try_create = try_create


class MailboxExists(PermanentFailure):
    def __init__(self, name: str) -> None:
        super().__init__(f"mailbox {name!r} already exists")
        self.name = name


class InvalidMailboxName(PermanentFailure):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"invalid mailbox name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class PatternTooComplex(PermanentFailure):
    """A LIST or LSUB pattern has more wildcards than the server matches."""

    def __init__(self, wildcards: int, limit: int) -> None:
        super().__init__(f"the pattern has {wildcards} wildcards, at most {limit} are allowed")
        self.wildcards = wildcards
        self.limit = limit


class SpecialUseNotSupported(PermanentFailure):
    """A mailbox cannot have this special use here (RFC 6154 section 3)."""

    def __init__(self, attribute: str) -> None:
        super().__init__(f"special use {attribute} is not supported")
        self.attribute = attribute


class MailboxNotAllowed(PermanentFailure):
    """The operation is not allowed on this mailbox (e.g. deleting INBOX)."""


class MessageNotFound(PermanentFailure):
    pass


class QuotaExceeded(PermanentFailure):
    def __init__(self, address: str, quota: int, used: int, needed: int) -> None:
        super().__init__(
            f"{address} is over quota: {used} of {quota} bytes used, {needed} more needed"
        )
        self.address = address
        self.quota = quota
        self.used = used
        self.needed = needed


class MessageTooLarge(PermanentFailure):
    def __init__(self, limit: int) -> None:
        super().__init__(f"message exceeds the limit of {limit} bytes")
        self.limit = limit


class KeywordLimitExceeded(PermanentFailure):
    """A flag change or APPEND would pass a keyword limit: too many keywords in the
    mailbox or on one message, or a keyword name too long. Nothing was changed."""


class UnknownRecipient(PermanentFailure):
    def __init__(self, address: str) -> None:
        super().__init__(f"no such user here: {address}")
        self.address = address


class RecipientDisabled(PermanentFailure):
    def __init__(self, address: str) -> None:
        super().__init__(f"mailbox disabled: {address}")
        self.address = address


class AuthenticationFailed(PermanentFailure):
    """Wrong user name or password; the message never says which."""

    def __init__(self) -> None:
        super().__init__("authentication failed")


class MessageRejected(PermanentFailure):
    """Content refused by policy (e.g. a virus in ``reject`` mode)."""


class NotFound(PermanentFailure):
    """An administrative object (domain, user, alias, token) does not exist."""


class AlreadyExists(PermanentFailure):
    """An administrative object with that name already exists."""


class InvalidValue(PermanentFailure):
    """A value given by an operator or client is malformed (address, size, ...)."""


class ConfigError(LightMailError):
    """A configuration value is invalid; ``str()`` is the one line shown at start-up."""

    def __init__(self, section: str, key: str, value: str, allowed: str) -> None:
        super().__init__(f"config [{section}] {key} = {value!r} is invalid: expected {allowed}")
        self.section = section
        self.key = key
        self.value = value
        self.allowed = allowed


class PreconditionFailed(PermanentFailure):
    """A conditional change found the object in another state than the client
    expected (HTTP ``If-Match``/``If-None-Match``, RFC 9110 section 13.1)."""


class InvalidCalendarData(PermanentFailure):
    """A calendar object is not one the store can keep. ``precondition`` is the
    RFC 4791 section 5.3.2.1 element that names the rule it breaks, such as
    ``valid-calendar-data`` or ``no-uid-conflict``; for ``no-uid-conflict``,
    ``holder`` is the name of the object in the same collection that has the UID
    (the server reports its URL, RFC 4791 section 5.3.2.1)."""

    def __init__(self, precondition: str, reason: str, holder: str | None = None) -> None:
        super().__init__(reason)
        self.precondition = precondition
        self.holder = holder


class InvalidAddressData(InvalidCalendarData):
    """An address object (vCard) is not one the store can keep; ``precondition`` is
    the RFC 6352 section 6.3.2.1 element, such as ``valid-address-data`` or
    ``no-uid-conflict``."""
