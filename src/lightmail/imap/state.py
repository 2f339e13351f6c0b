"""IMAP connection states and the sets of them a command may be allowed in
(RFC 3501 sections 3 and 6).

Which command is allowed where is one column of the command table,
``imap/handlers/__init__.py::VERBS``: a command outside its states gets ``BAD``.
State changes happen in the handlers when they send the reply that causes them
(LOGIN's OK, SELECT's OK or NO, CLOSE, UNSELECT, LOGOUT).
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})
