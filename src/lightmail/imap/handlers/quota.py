"""QUOTA (RFC 9208): GETQUOTA and GETQUOTAROOT on the account's quota.

Every mailbox of a user shares one quota root, named ``""``: the account's
``quota`` (``lightmail user set-quota``, the API). Its one resource is
STORAGE, in units of 1024 octets (section 5.1): the live messages' sizes,
rounded up, against the limit rounded down. An account without a limit has
the root with no resources (section 4.2.1: "not limited"). Quotas are set by
the operator, not over IMAP: there is no SETQUOTA (no QUOTASET capability).
APPEND and COPY that would exceed the quota are refused with
``NO [OVERQUOTA]`` (section 4.3.1) by the mailstore's check; MOVE never is,
as it leaves the account's usage as it was (mail can always go to Trash).
"""

from __future__ import annotations

from lightmail.imap.session import ImapSession
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r

ROOT = b""  # the one quota root of every user's mailboxes


async def getquota(session: ImapSession, command: c.GetQuotaCommand) -> r.Completion:
    """GETQUOTA (section 4.1.1)."""
    if command.root != ROOT:
        return r.no("No such quota root", r.Code.NONEXISTENT)
    await _send_quota(session)
    return r.ok("Getquota completed")


async def getquotaroot(session: ImapSession, command: c.GetQuotaRootCommand) -> r.Completion:
    """GETQUOTAROOT (section 4.1.2): the mailbox need not exist."""
    name = session.decode_mailbox(command.mailbox)
    session.send(r.quotaroot_response(session.encode_mailbox(name), [ROOT]))
    await _send_quota(session)
    return r.ok("Getquotaroot completed")


async def _send_quota(session: ImapSession) -> None:
    quota = await session.store.quota(session.user_id)
    resources: list[tuple[str, int, int]] = []
    if quota.limit is not None:
        resources.append(("STORAGE", -(-quota.size // 1024), quota.limit // 1024))
    session.send(r.quota_response(ROOT, resources))
