"""Hypothesis strategies for header blocks: lines of a test's own kinds, each
ended by CRLF, a bare LF or nothing."""

from __future__ import annotations

from hypothesis import strategies as st


def header_blocks(lines: list[bytes], *, max_lines: int = 12) -> st.SearchStrategy[bytes]:
    """Headers of up to ``max_lines`` of ``lines``, each with any line end or none."""
    return st.lists(
        st.tuples(st.sampled_from(lines), st.sampled_from([b"\r\n", b"\n", b""])),
        max_size=max_lines,
    ).map(lambda chosen: b"".join(text + end for text, end in chosen))
