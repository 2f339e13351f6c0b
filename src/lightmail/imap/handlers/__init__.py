"""The IMAP command handlers, grouped by RFC area, and ``VERBS``: the one table
from a command class to the states that allow it, its handler and its metrics
label (the parse function is the wire layer's row in
``imap/wire/grammar/__init__.py::COMMANDS``).

A handler is ``async def verb(session, command) -> Completion | None``: it
calls the mailstore, sends its untagged responses through the session
(``session.send``; FETCH streams its literals), changes the session's state
itself (LOGIN, SELECT, CLOSE, LOGOUT: RFC 3501 section 3) and returns its
completion (``imap/wire/responses.py``: ``ok``, ``no``, ``bad``) without a tag:
the dispatcher stamps the command's tag on it. An error it raises is answered
by the dispatcher too (``imap/session.py::reply_for_error``). It returns None
only when the command was answered already: through ``session.complete``,
when it must act once its completion is queued (STARTTLS's handshake,
LOGOUT's end, a failed login that may be the last allowed), or by the driver,
when a bad line broke off IDLE, AUTHENTICATE or APPEND's literal.
"""

from __future__ import annotations

from lightmail.imap.handlers import (
    any_state,
    append,
    auth,
    fetch,
    idle,
    mailboxes,
    quota,
    search,
    selected,
    sort,
)
from lightmail.imap.session import Verb
from lightmail.imap.state import ANY, AUTHENTICATED, NOT_AUTHENTICATED, SELECTED
from lightmail.imap.wire import commands as c

VERBS: dict[type[c.Command], Verb] = {
    c.CapabilityCommand: Verb(ANY, any_state.capability, "capability"),
    c.NoopCommand: Verb(ANY, any_state.noop, "noop"),
    c.LogoutCommand: Verb(ANY, any_state.logout, "logout"),
    c.IdCommand: Verb(ANY, any_state.identify, "id"),
    c.StartTlsCommand: Verb(NOT_AUTHENTICATED, auth.starttls, "starttls"),
    c.AuthenticateCommand: Verb(NOT_AUTHENTICATED, auth.authenticate, "authenticate"),
    c.LoginCommand: Verb(NOT_AUTHENTICATED, auth.login, "login"),
    c.EnableCommand: Verb(AUTHENTICATED, any_state.enable, "enable"),
    c.CompressCommand: Verb(AUTHENTICATED, any_state.compress, "compress"),
    c.SelectCommand: Verb(AUTHENTICATED, mailboxes.select, "select"),  # "examine" when read-only
    c.CreateCommand: Verb(AUTHENTICATED, mailboxes.create, "create"),
    c.DeleteCommand: Verb(AUTHENTICATED, mailboxes.delete, "delete"),
    c.RenameCommand: Verb(AUTHENTICATED, mailboxes.rename, "rename"),
    c.SubscribeCommand: Verb(AUTHENTICATED, mailboxes.subscribe, "subscribe"),
    c.UnsubscribeCommand: Verb(AUTHENTICATED, mailboxes.unsubscribe, "unsubscribe"),
    c.ListCommand: Verb(AUTHENTICATED, mailboxes.list_mailboxes, "list"),
    c.LsubCommand: Verb(AUTHENTICATED, mailboxes.lsub, "lsub"),
    c.StatusCommand: Verb(AUTHENTICATED, mailboxes.status, "status"),
    c.AppendCommand: Verb(AUTHENTICATED, append.append, "append"),
    c.NamespaceCommand: Verb(AUTHENTICATED, any_state.namespace, "namespace"),
    c.IdleCommand: Verb(AUTHENTICATED, idle.idle, "idle"),
    c.GetQuotaCommand: Verb(AUTHENTICATED, quota.getquota, "getquota"),
    c.GetQuotaRootCommand: Verb(AUTHENTICATED, quota.getquotaroot, "getquotaroot"),
    c.CheckCommand: Verb(SELECTED, any_state.noop, "check"),
    c.CloseCommand: Verb(SELECTED, selected.close, "close"),
    c.UnselectCommand: Verb(SELECTED, selected.unselect, "unselect"),
    c.ExpungeCommand: Verb(SELECTED, selected.expunge, "expunge"),
    c.UidExpungeCommand: Verb(SELECTED, selected.expunge, "uid_expunge"),
    c.SearchCommand: Verb(SELECTED, search.search, "search"),
    c.SortCommand: Verb(SELECTED, sort.sort, "sort"),
    c.ThreadCommand: Verb(SELECTED, sort.thread, "thread"),
    c.FetchCommand: Verb(SELECTED, fetch.fetch, "fetch"),
    c.StoreCommand: Verb(SELECTED, selected.store, "store"),
    c.CopyCommand: Verb(SELECTED, selected.copy, "copy"),
    c.MoveCommand: Verb(SELECTED, selected.copy, "move"),
}
