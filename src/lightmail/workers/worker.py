"""A worker process's side: the sockets and channel it inherits from its supervisor."""

from __future__ import annotations

import logging
import socket

from lightmail import runtime
from lightmail.config import Settings
from lightmail.net.listener import inherit_sockets
from lightmail.notify.bus import ChangeEvent, InProcessNotificationBus
from lightmail.workers.channel import Channel, ChannelError

log = logging.getLogger(__name__)


class RelayedNotificationBus(InProcessNotificationBus):
    """Delivers an event to this process's subscribers and sends it to the
    supervisor, which relays it to every other worker."""

    description = "in-process, relayed between workers by the supervisor"

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self._channel = channel

    async def publish(self, event: ChangeEvent) -> None:
        await super().publish(event)
        self._channel.send({"op": "event", "event": event.to_dict()})

    async def relayed(self, event: ChangeEvent) -> None:
        """An event another worker published."""
        await super().publish(event)


class SupervisorLink:
    """This worker's channel to its supervisor (:class:`lightmail.runtime.Supervised`)."""

    def __init__(self, index: int, channel: Channel) -> None:
        self.index = index
        self.bus = RelayedNotificationBus(channel)
        self._channel = channel

    async def run(self) -> None:
        """Serve the supervisor's messages; return once it has gone away."""
        try:
            while (message := await self._channel.receive()) is not None:
                if message["op"] == "event":
                    await self.bus.relayed(ChangeEvent.from_dict(message["event"]))
        except ChannelError as error:
            log.error("worker %d: bad message from the supervisor: %s", self.index, error)
        finally:
            await self._channel.close()


async def run_worker(settings: Settings, channel_fd: int) -> None:
    """Serve as the supervisor's worker on the sockets it sends (its first message)."""
    channel = await Channel.open(socket.socket(fileno=channel_fd))
    setup = await channel.receive()
    if setup is None:
        raise ChannelError("the supervisor went away before sending the sockets")
    inherit_sockets(
        {key: [socket.socket(fileno=fd) for fd in fds] for key, fds in setup["sockets"].items()}
    )
    await runtime.serve(settings, SupervisorLink(setup["index"], channel))
