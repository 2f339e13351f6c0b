"""The mailstore: the one place that changes mail.

Every change is one SQL transaction plus blob writes, and publishes a
:class:`~lightmail.notify.bus.ChangeEvent` once committed. The parts, one
module each, all on :class:`~lightmail.mailstore.core.StoreCore` (storage
handles and the SQL steps they share, and the rule for deleting a new blob
after a failed commit):

- :mod:`~lightmail.mailstore.mailboxes`: mailboxes and subscriptions;
- :mod:`~lightmail.mailstore.delivery`: APPEND and LMTP delivery;
- :mod:`~lightmail.mailstore.ingest`: a new message held until it is committed;
- :mod:`~lightmail.mailstore.messages`: COPY, MOVE, STORE, EXPUNGE, FETCH;
- :mod:`~lightmail.mailstore.quarantine`: messages the virus scanner kept aside;
- :mod:`~lightmail.mailstore.purge`: soft-deleted messages, restored or purged.

Protocol code calls this module and never SQL or the blob store directly.
Errors are those of :mod:`lightmail.errors`; nothing here formats a reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from contextlib import AbstractAsyncContextManager

from lightmail.mailstore.delivery import Delivery
from lightmail.mailstore.ingest import Ingest, ingesting
from lightmail.mailstore.mailboxes import Mailboxes
from lightmail.mailstore.messages import Messages
from lightmail.mailstore.purge import DeletedMail
from lightmail.mailstore.quarantine import Quarantine
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
    "QuarantinedMessage",
    "Recipient",
    "StoreMode",
    "StoreResult",
    "StoredMessage",
]


class MailStore(Mailboxes, Delivery, Messages, Quarantine, DeletedMail):
    """Every operation on mail; see the module documentation for its parts."""

    def ingest(self, source: AsyncIterable[bytes]) -> AbstractAsyncContextManager[Ingest]:
        """Stream ``source`` into a new blob, held for the ``async with`` block.

        Inside, the caller decides (a virus verdict, a size check) and commits
        the message with :class:`Ingest`'s ``append``, ``deliver`` or
        ``quarantine``; otherwise the blob is deleted when the block ends.
        """
        return ingesting(self, source)
