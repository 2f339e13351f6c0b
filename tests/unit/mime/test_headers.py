"""Header fields: raw 8-bit text is decoded as UTF-8, invalid octets as U+FFFD."""

from __future__ import annotations

from tests.unit.mime.corpus import RAW_UTF8, addr, scan


def test_raw_8bit_headers_are_decoded_as_utf8_with_replacement() -> None:
    result = scan(RAW_UTF8)
    assert result.envelope.subject == "Grüße \ufffd end"
    assert result.envelope.from_ == (addr("joerg", "example.org", "Jörg"),)
    assert result.subject == "Grüße \ufffd end"
    assert result.from_ == "Jörg <joerg@example.org>"
    assert result.body.params == (("CHARSET", "utf-8"),)
    assert result.body.lines == 1
