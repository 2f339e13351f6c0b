"""Content-* parameters: RFC 2045 syntax and RFC 2231 continuations, as Dovecot merges them."""

from __future__ import annotations

from lightmail.mailstore.mime.types import Disposition
from tests.unit.mime.corpus import RFC2231, check_invariants, scan


def test_rfc2231_parameters_merged_as_dovecot_does() -> None:
    result = scan(RFC2231)
    pdf, text = result.body.children
    assert pdf.params == (("NAME*", "utf-8''%E2%82%AC%20report.pdf"),)
    assert pdf.param("name") == "€ report.pdf"
    assert pdf.disposition == Disposition(
        "ATTACHMENT",
        (("FILENAME*", "utf-8''%E2%82%AC%20report.pdf"), ("FILENAME", "EUR report.pdf")),
    )
    assert pdf.filename == "€ report.pdf"  # the RFC 2231 form wins
    # Plain continuations are joined in index order; a gap leaves them unmerged.
    assert text.params == (
        ("TITLE", "a bc"),
        ("GAP*0", "x"),
        ("GAP*2", "z"),
        ("CHARSET", "US-ASCII"),
    )
    assert (pdf.lines, text.lines) == (0, 0)
    assert RFC2231[pdf.body_start : pdf.end] == b"data"


def test_8bit_parameter_name_does_not_break_the_parse() -> None:
    """'\xff'.upper() is not latin-1: parameter names are upper-cased in ASCII only."""
    message = b"Content-Type: text/plain; \xc3\xbf\xc2\xb5=1; ch\xc3\x9f=2\r\n\r\nx"
    result = scan(message)
    assert result.body.params == (("ÿµ", "1"), ("CHß", "2"), ("CHARSET", "US-ASCII"))
    check_invariants(message, result)
