"""Several worker processes per node (``serve --workers N``, ``[server] workers``).

A supervisor (:mod:`.supervisor`) binds every listening socket once, starts N
workers (``lightmail serve`` processes that inherit the sockets and a channel,
:mod:`.channel`, to the supervisor), restarts one that dies and stops them all
on SIGTERM. Each worker runs a whole node (:func:`lightmail.runtime.serve`)
on the inherited sockets; what must hold across the node goes through the
supervisor (:mod:`.worker`). With one worker there is no supervisor.
"""

from __future__ import annotations

from lightmail import runtime
from lightmail.config import Settings
from lightmail.errors import ConfigError
from lightmail.storage.blobs import empty_cache
from lightmail.workers.supervisor import Supervisor
from lightmail.workers.worker import run_worker

__all__ = ["Supervisor", "run_worker", "serve"]


async def serve(settings: Settings, workers: int | None, channel: int | None) -> None:
    """Run ``lightmail serve``: as a supervisor's worker when given its ``channel``
    (a file descriptor), else with ``workers`` processes (None: ``[server] workers``)."""
    if channel is not None:
        await run_worker(settings, channel)
        return
    folder = settings.blobs.cache_folder
    if folder is not None:  # before any process of the node opens it
        try:
            empty_cache(folder)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ConfigError(
                "blobs", "cache_folder", str(folder), f"a folder LightMail can write ({reason})"
            ) from None
    count = settings.server.workers if workers is None else workers
    if count > 1:
        await Supervisor(settings, count).run()
    else:
        await runtime.serve(settings)
