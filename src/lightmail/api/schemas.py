"""The JSON bodies of the HTTP API, as pydantic models.

Request bodies (``...In``, ``...Patch``) refuse unknown fields, so a typo is a
422 rather than a silent no-op. No model has a field for a password hash, and
only :class:`NewToken` carries a token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, AliasPath, BaseModel, ConfigDict, Field

from lightmail.accounts.tokens import NAME_PATTERN

T = TypeVar("T")

MAX_BYTES = 2**62  # far above any real quota, far below the database's BIGINT
MAX_UID = 2**32 - 1  # IMAP UIDs are 32-bit (RFC 3501 section 2.3.1.1)
MAX_ID = 2**62


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# A time the database keeps as naive UTC, answered with its zone.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error answer: a stable code for programs and a sentence for people."""

    error: str = Field(description="A stable, machine-readable code such as `not_found`.")
    detail: str = Field(description="One sentence for the operator.")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


# -- system -------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """The node serves (200). ``degraded`` while it cannot reach the Redis of
    ``[notify] url``: it still serves, and its sessions see changes by polling the
    database every ``[notify] poll_interval`` (``notifications: polling``)."""

    status: Literal["ready", "degraded"] = "ready"
    database: Literal["ok"] = "ok"
    blobs: Literal["ok"] = "ok"
    notifications: Literal["live", "polling"] = "live"


# -- domains, users, aliases ----------------------------------------------------


class DomainIn(_Input):
    name: str = Field(min_length=1, max_length=253, examples=["example.org"])


class Domain(BaseModel):
    name: str
    users: int = Field(description="How many users the domain has.")


class DomainPage(Page[Domain]):
    pass


class UserIn(_Input):
    address: str = Field(min_length=1, max_length=320, examples=["alice@example.org"])
    password: str = Field(min_length=1, max_length=1024)
    quota: int | None = Field(
        default=None, ge=0, le=MAX_BYTES, description="Bytes; null for unlimited."
    )
    enabled: bool = True


class UserPatch(_Input):
    """Only the fields given change. ``quota: null`` makes the quota unlimited; a
    null password or enabled is the same as leaving it out."""

    password: str | None = Field(default=None, min_length=1, max_length=1024)
    quota: int | None = Field(
        default=None, ge=0, le=MAX_BYTES, description="Bytes; null for unlimited."
    )
    enabled: bool | None = None


class User(BaseModel):
    address: str
    quota: int | None = Field(description="Bytes; null for unlimited.")
    enabled: bool
    created_at: datetime


class UserPage(Page[User]):
    pass


class Usage(BaseModel):
    address: str
    bytes: int = Field(description="Bytes of live (not deleted) mail: what the quota counts.")
    messages: int
    quota: int | None
    available: int | None = Field(description="Bytes left under the quota; null if unlimited.")


class AliasIn(_Input):
    address: str = Field(
        min_length=1,
        max_length=320,
        description="The alias address, or `*@domain` for the domain's catch-all.",
        examples=["team@example.org", "*@example.org"],
    )
    targets: list[str] = Field(min_length=1, max_length=1000, examples=[["alice@example.org"]])


class Alias(BaseModel):
    address: str = Field(description="`*@domain` is the domain's catch-all.")
    targets: list[str]


class AliasPage(Page[Alias]):
    pass


# -- calendars and address books ---------------------------------------------------

# A calendar's or address book's path segment (lightmail.calendars.checks.check_name).
_COLLECTION_NAME = r'^[^/\\"<>\x00-\x1f]+$'


class AddressBookIn(_Input):
    name: str = Field(
        min_length=1,
        max_length=255,
        pattern=_COLLECTION_NAME,
        description="The path segment in CalDAV or CardDAV URLs.",
        examples=["work"],
    )
    display_name: str = Field(
        "", max_length=255, description="Shown by clients; the name if empty."
    )
    description: str = Field("", max_length=10_000)


class CalendarIn(AddressBookIn):
    color: str = Field("", max_length=32, examples=["#3a87adff"])
    components: list[Literal["VEVENT", "VTODO", "VJOURNAL"]] = Field(
        default=["VEVENT", "VTODO"], min_length=1, max_length=3
    )


class AddressBook(BaseModel):
    # Read from lightmail.calendars.rows.CalendarInfo (so is a Calendar).
    model_config = ConfigDict(from_attributes=True)

    name: str
    display_name: str
    description: str
    sync_token: int = Field(description="Raised by every change to its objects.")


class Calendar(AddressBook):
    color: str
    components: list[str]


class CalendarPage(Page[Calendar]):
    pass


class CalendarImported(BaseModel):
    created: int = Field(description="Objects with a UID the calendar did not have.")
    replaced: int = Field(description="Objects that replaced the one with their UID.")


class AddressBookPage(Page[AddressBook]):
    pass


# -- mailboxes and messages --------------------------------------------------------


class MailboxIn(_Input):
    name: str = Field(
        min_length=1,
        max_length=1000,
        description="`/` separates levels.",
        examples=["Archive/2024"],
    )


class MailboxPatch(_Input):
    name: str = Field(min_length=1, max_length=1000, description="The new name.")


class Mailbox(BaseModel):
    # Read from lightmail.mailstore.types.MailboxStatus: the mailbox, then its counts.
    model_config = ConfigDict(from_attributes=True)

    name: str = Field(validation_alias=AliasPath("mailbox", "name"))
    special_use: str | None = Field(
        validation_alias=AliasPath("mailbox", "special_use"),
        description="RFC 6154 attribute, such as `\\Sent`.",
    )
    uidvalidity: int = Field(validation_alias=AliasPath("mailbox", "uidvalidity"))
    uidnext: int = Field(validation_alias=AliasPath("mailbox", "uidnext"))
    messages: int
    unseen: int
    size: int = Field(description="Bytes of the mailbox's messages.")


class MailboxPage(Page[Mailbox]):
    pass


class Message(BaseModel):
    uid: int
    flags: list[str] = Field(examples=[["\\Seen", "$Important"]])
    size: int
    internal_date: datetime
    from_: str = Field(serialization_alias="from", description="The From header, decoded.")
    subject: str = Field(description="The Subject header, decoded.")


class MessagePage(Page[Message]):
    pass


class MessageDetail(Message):
    date: str | None = Field(description="The Date header as written.")
    to: list[str]
    cc: list[str]
    message_id: str | None


class FlagsIn(_Input):
    flags: list[str] = Field(
        max_length=100,
        description="The new flags, replacing the old: system flags and keywords.",
        examples=[["\\Seen", "$Important"]],
    )


class Appended(BaseModel):
    mailbox: str
    uidvalidity: int
    uid: int


class DeletedMessage(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the mailstore's DeletedMessage

    id: int = Field(description="Pass to `restore`.")
    mailbox: str | None = Field(description="Where it was; null if that mailbox is gone too.")
    uid: int = Field(description="Its UID before it was deleted.")
    size: int
    internal_date: datetime = Field(validation_alias="internaldate")
    deleted_at: datetime
    from_: str = Field(validation_alias="from_addr", serialization_alias="from")
    subject: str


class DeletedPage(Page[DeletedMessage]):
    pass


class Restored(BaseModel):
    id: int
    mailbox: str
    uidvalidity: int
    uid: int = Field(description="Its new UID.")


# -- quarantine, gc, tokens ----------------------------------------------------------


class Quarantined(BaseModel):
    id: int
    sender: str
    recipients: list[str]
    virus: str
    size: int
    created_at: datetime


class QuarantinePage(Page[Quarantined]):
    pass


class Released(BaseModel):
    id: int
    delivered_to: list[str] = Field(description="Recipients whose INBOX got the message.")


class GcReport(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from lightmail.gc.GcReport

    started_at: UtcDatetime
    finished_at: UtcDatetime
    dry_run: bool
    messages_purged: int
    blobs_deleted: int
    bytes_freed: int
    orphans_deleted: int
    error: str | None


class GcStatus(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from lightmail.gc.GcStatus

    last_run: GcReport | None = Field(description="The latest run of any node.")
    deleted_messages: int = Field(description="Soft-deleted messages not purged yet.")
    deleted_bytes: int
    due_messages: int = Field(description="Of those, how many are past the retention period.")


class TokenIn(_Input):
    name: str = Field(pattern=f"^{NAME_PATTERN}$", examples=["admin-panel"])


class Token(BaseModel):
    name: str
    created_at: datetime
    last_used_at: datetime | None


class TokenPage(Page[Token]):
    pass


class NewToken(Token):
    token: str = Field(description="The bearer token. It is shown this once; keep it safe.")
