"""BodyPart.find: RFC 3501 section 6.4.5 part numbering."""

from __future__ import annotations

from tests.unit.mime.corpus import RFC3501_EXAMPLE, SIMPLE, crlf, scan


def test_rfc3501_part_numbering() -> None:
    """The example of RFC 3501 section 6.4.5, section by section."""
    root = scan(RFC3501_EXAMPLE).body
    expected = {
        (1,): ("TEXT", "PLAIN", b"part 1"),
        (2,): ("APPLICATION", "OCTET-STREAM", b"part 2"),
        (3,): ("MESSAGE", "RFC822", None),
        (3, 1): ("TEXT", "PLAIN", b"part 3.1"),
        (3, 2): ("APPLICATION", "OCTET-STREAM", b"part 3.2"),
        (4,): ("MULTIPART", "MIXED", None),
        (4, 1): ("IMAGE", "GIF", b"part 4.1"),
        (4, 2): ("MESSAGE", "RFC822", None),
        (4, 2, 1): ("TEXT", "PLAIN", b"part 4.2.1"),
        (4, 2, 2): ("MULTIPART", "ALTERNATIVE", None),
        (4, 2, 2, 1): ("TEXT", "PLAIN", b"part 4.2.2.1"),
        (4, 2, 2, 2): ("TEXT", "RICHTEXT", b"part 4.2.2.2"),
    }
    for section, (major, minor, body) in expected.items():
        found = root.find(section)
        assert found is not None, section
        assert (found.type, found.subtype) == (major, minor), section
        if body is not None:
            assert RFC3501_EXAMPLE[found.body_start : found.end] == body, section
    for missing in [(0,), (5,), (1, 1), (3, 3), (4, 3), (4, 2, 3), (4, 2, 2, 3), (1, 1, 1)]:
        assert root.find(missing) is None, missing
    assert root.find(()) is root
    # 3.HEADER, 3.TEXT and 4.1.MIME are byte ranges.
    three = root.find((3,))
    assert three is not None
    assert three.message is not None
    assert three.envelope is not None
    inner = three.message
    assert RFC3501_EXAMPLE[inner.header_start : inner.body_start] == crlf(
        "Subject: part 3\nContent-Type: multipart/mixed; boundary=x3\n\n"
    )
    assert RFC3501_EXAMPLE[inner.body_start : inner.end].startswith(b"--x3\r\n\r\npart 3.1")
    assert RFC3501_EXAMPLE[inner.body_start : inner.end].endswith(b"--x3--")
    assert three.envelope.subject == "part 3"
    gif = root.find((4, 1))
    assert gif is not None
    assert RFC3501_EXAMPLE[gif.header_start : gif.body_start] == b"Content-Type: image/gif\r\n\r\n"


def test_part_one_of_a_single_part_message_is_its_body() -> None:
    body = scan(SIMPLE).body
    assert body.find((1,)) is body
    assert body.find((2,)) is None
    assert body.find((1, 1)) is None
