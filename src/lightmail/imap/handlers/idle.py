"""IDLE (RFC 2177): a second read loop that pushes changes until DONE."""

from __future__ import annotations

import asyncio
import logging

from lightmail.imap.session import ImapSession
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.receiver import NEED_DATA, IdleDone
from lightmail.imap.wire.responses import Completion, ContinuationResponse, ok

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
    while True:
        event = session.receiver.next_event()
        if isinstance(event, IdleDone):
            return ok("Idle completed")
        if event is not NEED_DATA:
            await session.driver.dispatch(event)  # a BadCommand: IDLE is over
            return None
        read = asyncio.ensure_future(session.driver.read())
        change = asyncio.ensure_future(subscription.get())
        try:
            done, _ = await asyncio.wait({read, change}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (read, change):
                if not task.done():
                    task.cancel()
        if change in done:
            await session.announce(allow_expunge=True, force=True)
            await session.driver.flush()
        if read in done:
            session.receiver.receive_data(read.result())
