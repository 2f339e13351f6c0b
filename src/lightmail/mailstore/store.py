"""The mailstore: the one place that changes mail.

Every change is one SQL transaction plus blob writes, and publishes a
:class:`~lightmail.notify.bus.ChangeEvent` once committed. The parts, one
module each, all on :class:`~lightmail.mailstore.core.StoreCore` (storage
handles and the SQL steps they share, and the rule for deleting a new blob
after a failed commit):

- :mod:`~lightmail.mailstore.mailboxes`: mailboxes and subscriptions;
- :mod:`~lightmail.mailstore.delivery`: APPEND and LMTP delivery;
- :mod:`~lightmail.mailstore.ingest`: a new message held until it is committed
  (on :mod:`~lightmail.mailstore.delivery` and :mod:`~lightmail.mailstore.quarantine`);
- :mod:`~lightmail.mailstore.messages`: COPY, MOVE, STORE, EXPUNGE, FETCH;
- :mod:`~lightmail.mailstore.quarantine`: messages the virus scanner kept aside;
- :mod:`~lightmail.mailstore.purge`: soft-deleted messages, restored or purged.

Protocol code calls this module and never SQL or the blob store directly.
Errors are those of :mod:`lightmail.errors`; nothing here formats a reply.
"""

from __future__ import annotations

from lightmail.mailstore.ingest import Ingest, Intake
from lightmail.mailstore.mailboxes import Mailboxes
from lightmail.mailstore.messages import Messages
from lightmail.mailstore.purge import DeletedMail
from lightmail.mailstore.types import (
    SYSTEM_FLAGS,
    AppendResult,
    CopyResult,
    DeletedMessage,
    DeliveryOutcome,
    Expunged,
    Flags,
    KeywordLimits,
    Mailbox,
    MailboxStatus,
    MessageInfo,
    MessageMeta,
    MessageSortKeys,
    NewMessage,
    QuarantinedMessage,
    Recipient,
    StoredMessage,
    StoreMode,
    StoreResult,
)

__all__ = [
    "SYSTEM_FLAGS",
    "AppendResult",
    "CopyResult",
    "DeletedMessage",
    "DeliveryOutcome",
    "Expunged",
    "Flags",
    "Ingest",
    "KeywordLimits",
    "MailStore",
    "Mailbox",
    "MailboxStatus",
    "MessageInfo",
    "MessageMeta",
    "MessageSortKeys",
    "NewMessage",
    "QuarantinedMessage",
    "Recipient",
    "StoreMode",
    "StoreResult",
    "StoredMessage",
]


class MailStore(Mailboxes, Intake, Messages, DeletedMail):
    """Every operation on mail; see the module documentation for its parts."""
