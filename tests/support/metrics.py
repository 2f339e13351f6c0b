"""Reading the Prometheus registry in tests.

Every test of a run shares the default registry, so tests compare how much a
sample moved, never its value.
"""

from __future__ import annotations

from prometheus_client import REGISTRY

_Key = tuple[str, frozenset[tuple[str, str]]]


def _samples() -> dict[_Key, float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for metric in REGISTRY.collect()
        for sample in metric.samples
    }


class Changes:
    """The registry's samples when made; calling it says how much one moved since.

    ``changes("lightmail_commands_total", protocol="imap", command="login")``
    """

    def __init__(self) -> None:
        self._before = _samples()

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return _samples().get(key, 0.0) - self._before.get(key, 0.0)
