"""Telling a session's client what changed in its selected mailbox (RFC 3501
sections 5.2 and 7.4.1, RFC 7162): the catch-up after a change event (only the
messages changed and expunged since the view was current), EXPUNGE or VANISHED,
FETCH of new flags (with MODSEQ under CONDSTORE), EXISTS and RECENT, and FLAGS
again when a keyword is new to the client.

``SelectedChanges`` is a part of :class:`~lightmail.imap.session.ImapSession`;
its methods use the session's state (its view, mod-sequence, CONDSTORE and
QRESYNC flags) and are called as the session's own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from lightmail.errors import MailboxNotFound, TemporaryFailure
from lightmail.imap.selected import SelectedMailbox, Snapshot, Updates
from lightmail.imap.wire.responses import (
    Raw,
    Response,
    ResponseCode,
    Status,
    UntaggedResponse,
    exists_response,
    expunge_response,
    fetch_response,
    flag_list,
    flags_response,
    recent_response,
)
from lightmail.imap.wire.results import vanished_response
from lightmail.imap.wire.types import SequenceSet
from lightmail.mailstore.store import Mailbox, MessageInfo

if TYPE_CHECKING:
    from lightmail.mailstore.store import MailStore
    from lightmail.net.stream import Connection
    from lightmail.notify.bus import Subscription

log = logging.getLogger(__name__)

SYSTEM_FLAGS = (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")


def flag_bytes(flags: Iterable[str]) -> list[bytes]:
    return [flag.encode() for flag in flags]


class SelectedChanges:
    """The methods of :class:`~lightmail.imap.session.ImapSession` that tell its client
    of changes to the selected mailbox."""

    if TYPE_CHECKING:  # the session's state these methods use (ImapSession sets it)
        store: MailStore
        conn: Connection
        selected: SelectedMailbox | None
        subscription: Subscription | None
        modseq: int
        condstore: bool
        qresync: bool
        _changed: bool
        _expunge_floor: int | None

        @property
        def user_id(self) -> int: ...

        @property
        def view(self) -> SelectedMailbox: ...

        @property
        def rev2(self) -> bool: ...

        def send(self, response: Response) -> None: ...

    def note_own_change(self, modseq: int) -> None:
        """This session changed the selected mailbox's messages at ``modseq`` and
        updated its view itself. When that is the next mod-sequence after the one
        it last looked at, nothing else changed the mailbox in between: the view
        is current at ``modseq``, and the change's own event reloads nothing."""
        if modseq == self.modseq + 1:
            self.modseq = modseq

    async def announce(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Tell the client what changed in its selected mailbox since it last heard.

        Looks at the store only when a change event for the mailbox arrived
        (or ``force``: NOOP, IDLE), and then only if HIGHESTMODSEQ moved. If the
        database is unavailable the changes wait for the next command; the
        command itself has done its work and is answered as such. While
        expunges are held back, a CONDSTORE client is told a HIGHESTMODSEQ from
        before them, so MODSEQ values it saw meanwhile cannot make it skip them
        when it resynchronizes (RFC 7162 section 3.2).
        """
        events = self.subscription.drain() if self.subscription is not None else []
        view = self.selected
        if view is None:
            return
        if any(event.concerns(view.mailbox_id) for event in events):
            self._changed = True
        caught_up = False
        if force or self._changed:
            try:
                caught_up = await self._catch_up(view, allow_expunge=allow_expunge)
            except TemporaryFailure as error:
                log.info("imap %s: changes not announced for now: %s", self.conn.id, error)
                return
        if not caught_up and allow_expunge and view.has_pending_expunges:
            self.send_updates(view.release_expunges())
        if self.condstore and self._expunge_floor is not None:
            code = ResponseCode.highestmodseq(self._expunge_floor)
            self.send(UntaggedResponse(Status.OK, "Expunges pending", code))

    async def _catch_up(self, view: SelectedMailbox, *, allow_expunge: bool) -> bool:
        """Read the selected mailbox and send what changed; False if nothing did."""
        try:
            mailbox = await self.store.mailbox_by_id(self.user_id, view.mailbox_id)
        except MailboxNotFound:  # deleted by another session: all of it is gone
            self._changed = False
            self.send_updates(view.apply((), view.missing(()), allow_expunge=allow_expunge))
            return True
        if mailbox.highestmodseq == self.modseq:
            self._changed = False
            return False
        # Only what changed since the view was current, unless an expunge since
        # lost its row to the garbage collector: then every message, to compare.
        changed, expunged = await self.store.changes_since(mailbox, self.modseq)
        gone: Iterable[int] = expunged.uids
        if not expunged.complete:
            changed = await self.store.list_messages(mailbox)
            gone = view.missing(info.uid for info in changed)
        recent: list[int] = []
        if not view.readonly and changed and changed[-1].uid > view.largest_uid:
            recent = await self.store.claim_recent(mailbox)
        if not view.has_pending_expunges:
            self._expunge_floor = self.modseq  # any expunge found now is after it
        self.modseq = mailbox.highestmodseq
        self._changed = False
        updates = view.apply(
            self.snapshot(changed),
            gone,
            allow_expunge=allow_expunge,
            recent=recent,
            keywords=mailbox.keywords,
            keyword_room=self.store.may_create_keywords(mailbox),
        )
        self.send_updates(updates)
        return True

    async def send_vanished_earlier(
        self, mailbox: Mailbox, since: int, known: SequenceSet, *, through: int = 0
    ) -> None:
        """``VANISHED (EARLIER)``: the UIDs of ``known`` expunged after ``since`` (RFC
        7162 sections 3.2.5.1 and 3.2.6), UIDs still in the view excepted (their
        expunge is announced as it happens). When the store no longer records
        every such expunge by UID, every UID of ``known`` that is not live goes,
        above ``through`` (the client's matched sequence data), as the RFC asks
        of a server that remembers less than the client's mod-sequence."""
        largest = mailbox.uidnext - 1
        if largest < 1:  # never held a message
            return
        view = self.view
        expunged = await self.store.expunged_since(mailbox, since)
        gone: SequenceSet | None = None
        if expunged.complete:
            uids = [u for u in known.members(expunged.uids, largest) if view.seq_of(u) is None]
            gone = SequenceSet.from_numbers(uids) if uids else None
        else:
            live = {info.uid for info in await self.store.list_messages(mailbox)}
            gone = known.without(sorted(live.union(view.uids)), largest, above=through)
        if gone is not None:
            self.send(vanished_response(gone, earlier=True))

    def snapshot(self, infos: Iterable[MessageInfo]) -> Iterator[Snapshot]:
        """The view's input from the mailstore's message listing."""
        return (Snapshot(i.uid, i.flags.names(), i.modseq) for i in infos)

    async def announce_new_keywords(self, view: SelectedMailbox) -> None:
        """FLAGS and PERMANENTFLAGS again when flags this session just stored (its
        own, and any another session set on the same messages) hold a keyword the
        client was not told of: before a FETCH shows it (RFC 3501 7.2.6)."""
        if not view.has_unannounced_keywords:
            return
        mailbox = await self.store.mailbox_by_id(self.user_id, view.mailbox_id)
        if view.announce_keywords(mailbox.keywords, room=self.store.may_create_keywords(mailbox)):
            self.send_keywords(view)

    def send_keywords(self, view: SelectedMailbox) -> None:
        """FLAGS and PERMANENTFLAGS with the keywords the view announces (RFC 3501
        7.2.6 and 7.1): ``\\*`` only while the mailbox may define more of them."""
        flags = [*SYSTEM_FLAGS, *flag_bytes(view.keywords)]
        self.send(flags_response(flags))
        permanent: list[bytes] = []
        if not view.readonly:
            permanent = [*flags, b"\\*"] if view.keyword_room else flags
        self.send(
            UntaggedResponse(Status.OK, "Flags permitted", ResponseCode.permanentflags(permanent))
        )

    def send_updates(self, updates: Updates) -> None:
        if not self.view.has_pending_expunges:
            self._expunge_floor = None
        if updates.keywords is not None:
            self.send_keywords(self.view)
        if self.qresync and updates.expunged:
            # RFC 7162 section 3.2.10.2: one VANISHED instead of the EXPUNGEs.
            gone = SequenceSet.from_numbers(uid for _, uid in updates.expunged)
            self.send(vanished_response(gone, earlier=False))
        else:
            for seq, _ in updates.expunged:
                self.send(expunge_response(seq))
        for seq, uid, _, modseq in updates.flags:
            self.send(self.flags_fetch(seq, uid, modseq))
        if updates.exists is not None:
            self.send(exists_response(updates.exists))
        if updates.recent is not None and not self.rev2:  # RFC 9051 Appendix E item 12
            self.send(recent_response(updates.recent))

    def flags_fetch(self, seq: int, uid: int, modseq: int) -> Response:
        """The FETCH that tells of a message's new flags, whoever changed them: with
        UID, and with MODSEQ once CONDSTORE is enabled (RFC 7162 sections 3.1.4.2
        and 3.2.4)."""
        items: list[tuple[bytes, Any]] = [(b"UID", uid), (b"FLAGS", Raw(self.flag_list(uid)))]
        if self.condstore:
            items.append((b"MODSEQ", [modseq]))
        return fetch_response(seq, items)

    def flag_list(self, uid: int) -> bytes:
        """A message's flags as FETCH shows them: ``\\Recent`` is this session's own
        (RFC 3501 sections 2.3.2 and 9, ``flag-fetch``), and not shown after ENABLE
        IMAP4rev2, which deprecates it (RFC 9051 section 2.3.2)."""
        flags = flag_bytes(self.view.flags_of(uid))
        if self.view.is_recent(uid) and not self.rev2:
            flags.append(b"\\Recent")
        return flag_list(flags)
