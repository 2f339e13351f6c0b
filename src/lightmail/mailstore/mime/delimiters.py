"""Boundary delimiters (RFC 2046 section 5.1.1): the patterns that find, at C speed,
the lines a streaming scan must look at."""

from __future__ import annotations

import functools
import itertools
import re


def _alternation(words: list[bytes]) -> bytes:
    """A regex matching any of `words` (sorted, prefix-free), factored as a trie.

    Each line is then rejected in one pass, however many delimiters share a prefix.
    """
    if len(words) == 1:
        return re.escape(words[0])
    first, last = words[0], words[-1]
    common = 0
    while common < min(len(first), len(last)) and first[common] == last[common]:
        common += 1
    if common:
        return re.escape(first[:common]) + _alternation([word[common:] for word in words])
    branches = [list(group) for _, group in itertools.groupby(words, key=lambda word: word[:1])]
    return b"(?:" + b"|".join(_alternation(branch) for branch in branches) + b")"


def _prefix_free(delimiters: tuple[bytes, ...]) -> list[bytes]:
    """The delimiters no other one is a prefix of: enough to find candidate lines."""
    kept: list[bytes] = []
    for word in sorted(set(delimiters)):
        if not kept or not word.startswith(kept[-1]):
            kept.append(word)
    return kept


@functools.lru_cache(maxsize=64)
def delimiter_pattern(delimiters: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """Any of the open delimiters, to be matched at a line start."""
    return re.compile(_alternation(_prefix_free(delimiters)))


@functools.lru_cache(maxsize=64)
def line_pattern(in_header: bool, delimiters: tuple[bytes, ...]) -> re.Pattern[bytes]:
    """LF followed by a line that may matter: a delimiter, or in a header an empty line."""
    alternatives = [_alternation(_prefix_free(delimiters))] if delimiters else []
    if in_header:
        alternatives.insert(0, rb"\r?\n")
    return re.compile(rb"\n(?:" + b"|".join(alternatives) + rb")")
