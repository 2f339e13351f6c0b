"""The kinds of key many sections declare: a parser with the words a wrong value
is told, to be spread into :func:`~lightmail.config.keys.declare` between the
default and the documentation, as in ``declare("64M", *SIZE, "Largest message.")``.
"""

from __future__ import annotations

from lightmail.config.values import (
    BOOLEAN_TEXT,
    DURATION_TEXT,
    LISTEN_TEXT,
    SIZE_TEXT,
    boolean,
    parse_listen,
    positive_duration,
    positive_size,
)

LISTEN = (parse_listen, LISTEN_TEXT)  # addresses to listen on
DURATION = (positive_duration, f"{DURATION_TEXT}, above 0")  # seconds, above 0
SIZE = (positive_size, SIZE_TEXT)  # bytes, above 0
BOOLEAN = (boolean, BOOLEAN_TEXT)
