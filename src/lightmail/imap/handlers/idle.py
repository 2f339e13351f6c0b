"""IDLE (RFC 2177): a second read loop that pushes changes until DONE."""

from __future__ import annotations

import contextlib
import logging

from lightmail.imap.session import ImapSession
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.receiver import NEED_DATA, IdleDone
from lightmail.imap.wire.responses import Completion, ContinuationResponse, ok
from lightmail.net import Woken

log = logging.getLogger(__name__)


async def idle(session: ImapSession, command: c.IdleCommand) -> Completion | None:
    """IDLE (RFC 2177): changes are pushed as they happen until DONE (None: a bad
    line ended it, answered by the driver)."""
    await session.watch()
    session.send(ContinuationResponse("idling"))
    session.receiver.start_idle()
    await session.announce(allow_expunge=True, force=True)
    await session.driver.flush()
    subscription = session.subscription
    if subscription is None:
        raise AssertionError("_watch subscribed")
    subscription.waker = session.conn.wake  # a change ends the wait for the client
    try:
        while True:
            event = session.receiver.next_event()
            if isinstance(event, IdleDone):
                return ok("Idle completed")
            if event is not NEED_DATA:
                await session.driver.dispatch(event)  # a BadCommand: IDLE is over
                return None
            if subscription.pending:
                await session.announce(allow_expunge=True, force=True)
                await session.driver.flush()
                continue
            with contextlib.suppress(Woken):  # a change event: announced at the loop's top
                session.receiver.receive_data(await session.driver.read(wakeable=True))
    finally:
        subscription.waker = None
