"""THREAD algorithms (RFC 5256 BASE.6.4.THREAD), sans-I/O: no asyncio, no storage.

`thread` takes the searched messages (`SortMessage`, with their cached keys)
and returns the threads as `ThreadNode` trees for ``thread_response``.

ORDEREDSUBJECT groups by base subject. REFERENCES follows the RFC's six steps;
every walk over the tree is a loop with its own stack, never recursion, so a
chain of any depth (a thread of 10,000 replies, or a hostile one) is fine, and
links that would close a loop are not made (RFC 5256 step 1).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from lightmail.imap.sort import SortMessage
from lightmail.imap.wire.types import ThreadAlgorithm, ThreadNode

__all__ = ["thread"]


def thread(messages: Iterable[SortMessage], algorithm: ThreadAlgorithm) -> list[ThreadNode]:
    """The threads of `messages`, in order, by `algorithm`."""
    ordered = sorted(messages, key=lambda message: message.seq)
    if algorithm is ThreadAlgorithm.ORDEREDSUBJECT:
        return _ordered_subject(ordered)
    return _references(ordered)


def _sent(message: SortMessage) -> tuple[datetime, int]:
    """Sent date, ties broken by sequence number (RFC 5256 section 2.2)."""
    return message.sent, message.seq


# -- ORDEREDSUBJECT ------------------------------------------------------------------


def _ordered_subject(messages: Sequence[SortMessage]) -> list[ThreadNode]:
    """Sort by base subject and sent date; one thread per base subject, its first
    message the parent of all others; threads in the sent order of their first."""
    by_subject = sorted(messages, key=lambda message: (message.keys.subject, *_sent(message)))
    threads: list[tuple[tuple[datetime, int], ThreadNode]] = []
    for _, group in itertools.groupby(by_subject, key=lambda message: message.keys.subject):
        first, *rest = group
        children = tuple(ThreadNode(message.number) for message in rest)
        threads.append((_sent(first), ThreadNode(first.number, children)))
    threads.sort(key=lambda item: item[0])
    return [node for _, node in threads]


# -- REFERENCES ----------------------------------------------------------------------


class _Container:
    """A message, or a dummy standing for one that is not among the results."""

    __slots__ = ("children", "message", "parent")

    def __init__(self, message: SortMessage | None = None) -> None:
        self.message = message
        self.parent: _Container | None = None
        self.children: list[_Container] = []


def _link(parent: _Container, child: _Container) -> None:
    child.parent = parent
    parent.children.append(child)


def _unlink(child: _Container) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
        child.parent = None


def _would_loop(parent: _Container, child: _Container) -> bool:
    """Whether making `parent` the parent of `child` closes a loop: `parent` is
    `child` or one of its descendants (walked up from `parent`)."""
    if parent is child:
        return True
    if not child.children:
        return False
    node: _Container | None = parent
    while node is not None:
        if node is child:
            return True
        node = node.parent
    return False


def _first_message(container: _Container) -> SortMessage:
    """The message of a container, or of its first child for a dummy."""
    while container.message is None:
        container = container.children[0]
    return container.message


def _date_key(container: _Container) -> tuple[datetime, int]:
    return _sent(_first_message(container))


def _preorder(roots: Iterable[_Container]) -> Iterator[_Container]:
    stack = list(roots)
    while stack:
        container = stack.pop()
        yield container
        stack.extend(container.children)


def _references(messages: Sequence[SortMessage]) -> list[ThreadNode]:
    containers = _link_references(messages)
    roots = _prune([c for c in containers if c.parent is None])  # steps 2 and 3
    for root in roots:  # step 4
        if root.message is None:
            root.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    roots = _merge_subjects(roots)  # step 5
    for container in reversed(list(_preorder(roots))):  # step 6: deepest siblings first
        container.children.sort(key=_date_key)
    roots.sort(key=_date_key)
    return _nodes(roots)


def _link_references(messages: Sequence[SortMessage]) -> list[_Container]:
    """Step 1: every container made, messages and dummies, linked parent to child."""
    by_id: dict[str, _Container] = {}
    containers: list[_Container] = []

    def container_for(message_id: str) -> _Container:
        found = by_id.get(message_id)
        if found is None:
            found = by_id[message_id] = _Container()
            containers.append(found)
        return found

    for message in messages:
        message_id = message.keys.message_id
        own = by_id.get(message_id) if message_id else None
        if own is not None and own.message is None:
            own.message = message  # a dummy made for an earlier reference
        else:
            # No Message-ID, or a duplicate of an earlier message's: a unique one.
            own = _Container(message)
            containers.append(own)
            if message_id and message_id not in by_id:
                by_id[message_id] = own
        # (A) link the references one to the next, keeping existing parents.
        previous: _Container | None = None
        for reference in message.keys.references:
            current = container_for(reference)
            if (
                previous is not None
                and current.parent is None
                and not _would_loop(previous, current)
            ):
                _link(previous, current)
            previous = current
        # (B) the last reference is the parent, whatever parent it had before.
        _unlink(own)
        if previous is not None and not _would_loop(previous, own):
            _link(previous, own)
    return containers


def _prune(roots: list[_Container]) -> list[_Container]:
    """Step 3: dummies go; their children take their place. Under the root, a
    dummy stays when it has several children (they are not made roots)."""
    for container in reversed(list(_preorder(roots))):  # children before parents
        if any(child.message is None for child in container.children):
            kept: list[_Container] = []
            for child in container.children:
                if child.message is None:
                    for grandchild in child.children:
                        grandchild.parent = container
                    kept.extend(child.children)
                else:
                    kept.append(child)
            container.children = kept
    top: list[_Container] = []
    for root in roots:
        if root.message is None and len(root.children) < 2:
            for child in root.children:
                child.parent = None
            top.extend(root.children)
        else:
            top.append(root)
    return top


def _merge_subjects(roots: list[_Container]) -> list[_Container]:
    """Step 5: threads under the root with the same base subject are gathered."""
    table: dict[str, _Container] = {}
    for root in roots:  # (B)
        subject = _first_message(root).keys.subject
        if not subject:
            continue
        held = table.get(subject)
        if held is None or _replaces(root, held):
            table[subject] = root
    gone: set[int] = set()
    dummies: list[_Container] = []
    for root in roots:  # (C)
        if root.parent is not None or id(root) in gone:
            continue  # no longer under the root
        subject = _first_message(root).keys.subject
        if not subject:
            continue
        held = table[subject]
        if held is root:
            continue
        if held.message is None and root.message is None:
            for child in root.children:
                _link(held, child)
            root.children = []
            gone.add(id(root))
        elif held.message is None or _is_reply_to(root, held):
            _link(held, root)  # a sibling of its children
        else:
            dummy = _Container()
            _link(dummy, held)
            _link(dummy, root)
            table[subject] = dummy
            dummies.append(dummy)
    kept = [root for root in roots if root.parent is None and id(root) not in gone]
    return kept + dummies


def _replaces(current: _Container, held: _Container) -> bool:
    """Step 5.B.iv: a thread takes the subject table's place from a non-dummy when
    it is a dummy, or when the one held is a reply or forward and it is not."""
    if held.message is None:
        return False
    return current.message is None or (held.message.keys.reply and not current.message.keys.reply)


def _is_reply_to(current: _Container, held: _Container) -> bool:
    """Step 5.C: the current message is a reply or forward and the one held is not."""
    return (
        current.message is not None
        and held.message is not None
        and current.message.keys.reply
        and not held.message.keys.reply
    )


def _nodes(roots: list[_Container]) -> list[ThreadNode]:
    """The containers as `ThreadNode` trees, built bottom-up without recursion."""
    built: dict[int, ThreadNode] = {}
    for container in reversed(list(_preorder(roots))):
        number = None if container.message is None else container.message.number
        children = tuple(built.pop(id(child)) for child in container.children)
        built[id(container)] = ThreadNode(number, children)
    return [built[id(root)] for root in roots]
