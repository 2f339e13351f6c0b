"""IMAP connection states and which commands each allows (RFC 3501 sections 3 and 6).

One table: a command outside the states listed for it gets ``BAD``. State
changes happen in the session when it sends the reply that causes them
(LOGIN's OK, SELECT's OK or NO, CLOSE, UNSELECT, LOGOUT).
"""

from __future__ import annotations

import enum

from lightmail.imap.wire import commands as c


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED})
_NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
_AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
_SELECTED = frozenset({State.SELECTED})

ALLOWED: dict[type[c.Command], frozenset[State]] = {
    c.CapabilityCommand: _ANY,
    c.NoopCommand: _ANY,
    c.LogoutCommand: _ANY,
    c.IdCommand: _ANY,
    c.StartTlsCommand: _NOT_AUTHENTICATED,
    c.AuthenticateCommand: _NOT_AUTHENTICATED,
    c.LoginCommand: _NOT_AUTHENTICATED,
    c.EnableCommand: _AUTHENTICATED,
    c.SelectCommand: _AUTHENTICATED,
    c.CreateCommand: _AUTHENTICATED,
    c.DeleteCommand: _AUTHENTICATED,
    c.RenameCommand: _AUTHENTICATED,
    c.SubscribeCommand: _AUTHENTICATED,
    c.UnsubscribeCommand: _AUTHENTICATED,
    c.ListCommand: _AUTHENTICATED,
    c.LsubCommand: _AUTHENTICATED,
    c.StatusCommand: _AUTHENTICATED,
    c.AppendCommand: _AUTHENTICATED,
    c.NamespaceCommand: _AUTHENTICATED,
    c.IdleCommand: _AUTHENTICATED,
    c.CheckCommand: _SELECTED,
    c.CloseCommand: _SELECTED,
    c.UnselectCommand: _SELECTED,
    c.ExpungeCommand: _SELECTED,
    c.UidExpungeCommand: _SELECTED,
    c.SearchCommand: _SELECTED,
    c.FetchCommand: _SELECTED,
    c.StoreCommand: _SELECTED,
    c.CopyCommand: _SELECTED,
    c.MoveCommand: _SELECTED,
}


def allowed(command: c.Command, state: State) -> bool:
    return state in ALLOWED[type(command)]
