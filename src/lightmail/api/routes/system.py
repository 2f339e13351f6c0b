"""``/health``, ``/ready`` and ``/metrics``: open to load balancers and Prometheus.

``/metrics`` needs a token when ``[api] metrics_auth = true``; the app adds
the route with or without the token dependency accordingly.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lightmail.api import schemas as s
from lightmail.api.deps import Context
from lightmail.api.errors import responses, unavailable
from lightmail.metrics import node_registry

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"])


@router.get("/health")
async def health() -> s.Health:
    """Liveness: the process answers. Checks nothing else."""
    return s.Health()


@router.get("/ready", response_model=s.Ready, responses=responses(503))
async def ready(ctx: Context) -> Response:
    """Readiness: the database and the blob store answer (503 when one does not).
    Change notifications that fell back to polling (Redis unreachable) leave the node
    ready, since no change is missed, but ``degraded``, for the operator to look at."""
    try:
        await ctx.health.check()
    except Exception as error:
        log.warning("api: not ready: %s: %s", type(error).__name__, error)
        return unavailable()
    if ctx.store.bus.live:
        return JSONResponse(s.Ready().model_dump())
    return JSONResponse(s.Ready(status="degraded", notifications="polling").model_dump())


METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
    }
}


async def metrics() -> Response:
    """The node's Prometheus metrics (of every worker process)."""
    return Response(generate_latest(node_registry()), media_type=CONTENT_TYPE_LATEST)
