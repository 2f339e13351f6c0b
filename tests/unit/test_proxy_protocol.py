"""The PROXY protocol header reader (HAProxy's proxy-protocol.txt): v1 and v2,
whole, a byte at a time and split everywhere; malformed, truncated, oversized
and random input; and that reading what it asks for never reads past the header."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightmail.net.proxy import (
    V1_MAX_LENGTH,
    V2_MAX_LENGTH,
    V2_SIGNATURE,
    Endpoint,
    IPAddress,
    ProxyHeader,
    ProxyHeaderReader,
    ProxyProtocolError,
)
from lightmail.sansio import NEED_DATA

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
CLIENT4 = (V4("203.0.113.7"), 51234)
SERVER4 = (V4("192.0.2.1"), 993)
CLIENT6 = (V6("2001:db8::7"), 40000)
SERVER6 = (V6("2001:db8::1"), 143)


def v2(command: int, family: int, block: bytes, *, version: int = 2) -> bytes:
    """A v2 header: signature, ver_cmd, fam, length, then ``block``."""
    fixed = V2_SIGNATURE + bytes([version << 4 | command, family])
    return fixed + struct.pack("!H", len(block)) + block


def v2_proxy(source: Endpoint, destination: Endpoint, tlvs: bytes = b"") -> bytes:
    family = 0x11 if source[0].version == 4 else 0x21
    block = source[0].packed + destination[0].packed
    block += struct.pack("!HH", source[1], destination[1]) + tlvs
    return v2(1, family, block)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def read(data: bytes, chunks: list[int] | None = None) -> tuple[ProxyHeader, bytes]:
    """Feed ``data`` whole or in ``chunks`` (sizes; the rest last) until a header comes."""
    reader, at = ProxyHeaderReader(), 0
    for size in [*(chunks or []), len(data)]:
        reader.receive_data(data[at : at + size])
        at += size
        event = reader.next_event()
        if isinstance(event, ProxyHeader):
            return event, reader.trailing + data[at:]
    raise AssertionError(f"no header from {data!r}")


def read_as_told(stream: bytes) -> tuple[ProxyHeader, int]:
    """Read from ``stream`` exactly what the reader asks for, as the acceptor does;
    the header and how many bytes were read."""
    reader, at = ProxyHeaderReader(), 0
    while not isinstance(event := reader.next_event(), ProxyHeader):
        assert reader.wanted > 0
        chunk = stream[at : at + reader.wanted]
        assert chunk, "asked for bytes past the end"
        reader.receive_data(chunk)
        at += len(chunk)
    assert reader.trailing == b""
    return event, at


VALID = [
    pytest.param(
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\r\n",
        ProxyHeader(1, CLIENT4, SERVER4),
        id="v1-tcp4",
    ),
    pytest.param(
        b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 143\r\n",
        ProxyHeader(1, CLIENT6, SERVER6),
        id="v1-tcp6",
    ),
    pytest.param(b"PROXY UNKNOWN\r\n", ProxyHeader(1, None, None), id="v1-unknown-short"),
    pytest.param(
        b"PROXY UNKNOWN ffff:f::1 ffff:f::2 65535 65535\r\n",
        ProxyHeader(1, None, None),
        id="v1-unknown-long",
    ),
    pytest.param(
        b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
        ProxyHeader(1, (V4("0.0.0.0"), 0), (V4("255.255.255.255"), 65535)),  # noqa: S104
        id="v1-extremes",
    ),
    pytest.param(v2_proxy(CLIENT4, SERVER4), ProxyHeader(2, CLIENT4, SERVER4), id="v2-tcp4"),
    pytest.param(v2_proxy(CLIENT6, SERVER6), ProxyHeader(2, CLIENT6, SERVER6), id="v2-tcp6"),
    pytest.param(
        v2_proxy(CLIENT4, SERVER4, tlv(0x01, b"imap") + tlv(0x04, b"") + tlv(0x05, b"id-1")),
        ProxyHeader(2, CLIENT4, SERVER4),
        id="v2-tlvs",
    ),
    pytest.param(v2(0, 0x00, b""), ProxyHeader(2, None, None), id="v2-local"),
    pytest.param(
        v2(0, 0x11, b"junk the receiver ignores"),
        ProxyHeader(2, None, None),
        id="v2-local-with-block",
    ),
    pytest.param(v2(1, 0x00, b""), ProxyHeader(2, None, None), id="v2-unspec"),
    pytest.param(v2(1, 0x31, bytes(216)), ProxyHeader(2, None, None), id="v2-unix"),
]


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_valid_headers_whole_bytewise_and_split_everywhere(
    data: bytes, expected: ProxyHeader
) -> None:
    stream = data + b"* rest of the stream"
    assert read(stream) == (expected, b"* rest of the stream")
    assert read(stream, [1] * len(data)) == (expected, b"* rest of the stream")
    for split in range(1, len(data)):
        assert read(stream, [split]) == (expected, b"* rest of the stream")
    assert read_as_told(stream) == (expected, len(data))


def test_the_header_is_given_again_and_later_bytes_are_trailing() -> None:
    reader = ProxyHeaderReader()
    reader.receive_data(b"PROXY UNKNOWN\r\na1 NOOP")
    header = reader.next_event()
    reader.receive_data(b"\r\n")
    assert reader.next_event() == header
    assert reader.trailing == b"a1 NOOP\r\n"
    assert reader.wanted == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"a1 LOGIN user pass\r\n", "not a PROXY"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "not a PROXY"),  # a TLS ClientHello
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY"),
        (b"PROXY TCP4 " + b"1" * (V1_MAX_LENGTH - 11), "longer than 107"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare CR or LF"),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", "bare CR or LF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8\n1 2\r\n", "bare CR or LF"),
        (b"PROXY\r\n" + b"x" * 10, "not a PROXY"),
        (b"PROXY \r\n" + b"x" * 10, "unknown protocol"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "unknown protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "two addresses and two ports"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "two addresses and two ports"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "two addresses and two ports"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "two addresses and two ports"),
        (b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n", "malformed address"),
        (b"PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n", "malformed address"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "malformed address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n", "malformed address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "above 65535"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "malformed port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "malformed port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xd9\xa3\r\n", "malformed port"),  # Arabic-Indic 3
        (v2(1, 0x11, bytes(12), version=1), "version 1"),
        (v2(2, 0x11, bytes(12)), "unknown command"),
        (v2(0xF, 0x11, bytes(12)), "unknown command"),
        (v2(1, 0x41, bytes(12)), "unknown address family"),
        (v2(1, 0x13, bytes(12)), "unknown address family"),
        (v2(1, 0x10, bytes(12)), "unknown address family"),
        (v2(1, 0x12, bytes(12)), "datagram"),
        (v2(1, 0x22, bytes(36)), "datagram"),
        (v2(1, 0x11, bytes(11)), "shorter than its addresses"),
        (v2(1, 0x21, bytes(12)), "shorter than its addresses"),
        (v2(1, 0x31, bytes(215)), "shorter than its addresses"),
        (v2(1, 0x11, bytes(12) + b"\x01\x00"), "truncated TLV"),
        (v2(1, 0x11, bytes(12) + b"\x01\x00\x05abc"), "TLV longer than the header"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    reader = ProxyHeaderReader()
    with pytest.raises(ProxyProtocolError, match=reason):  # noqa: PT012 - bytewise too
        for byte in data:
            reader.receive_data(bytes([byte]))
            reader.next_event()
        raise AssertionError("no error")


def test_an_oversized_v2_header_is_refused_before_its_body_is_read() -> None:
    head = v2(1, 0x11, b"")[:-2] + struct.pack("!H", V2_MAX_LENGTH + 1)
    reader = ProxyHeaderReader()
    reader.receive_data(head)  # the 16 fixed bytes only
    with pytest.raises(ProxyProtocolError, match="above 4096"):
        reader.next_event()
    largest = v2(1, 0x11, bytes(12) + tlv(0xEE, bytes(V2_MAX_LENGTH - 15)))
    assert read(largest)[0] == ProxyHeader(2, (V4("0.0.0.0"), 0), (V4("0.0.0.0"), 0))  # noqa: S104


@pytest.mark.parametrize(("data", "expected"), VALID)
def test_every_truncation_needs_data_and_never_overreads(
    data: bytes, expected: ProxyHeader
) -> None:
    for end in range(len(data)):
        reader = ProxyHeaderReader()
        reader.receive_data(data[:end])
        assert reader.next_event() is NEED_DATA
        assert 0 < reader.wanted <= len(data) - end


def test_reading_as_told_leaves_a_tls_client_hello_unread() -> None:
    hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
    for header in (b"PROXY UNKNOWN\r\n", v2(0, 0x00, b""), v2_proxy(CLIENT4, SERVER4)):
        assert read_as_told(header + hello)[1] == len(header)


addresses4: st.SearchStrategy[IPAddress] = st.builds(V4, st.integers(0, 2**32 - 1))
addresses6: st.SearchStrategy[IPAddress] = st.builds(V6, st.integers(0, 2**128 - 1))
ports = st.integers(0, 65535)


def _endpoints(addresses: st.SearchStrategy[IPAddress]) -> st.SearchStrategy[Endpoint]:
    return st.tuples(addresses, ports)


@st.composite
def headers(draw: st.DrawFn) -> tuple[bytes, ProxyHeader]:
    """Any valid header and what it says."""
    addresses = draw(st.sampled_from([addresses4, addresses6]))
    source, destination = draw(_endpoints(addresses)), draw(_endpoints(addresses))
    if draw(st.booleans()):
        kind = "TCP4" if source[0].version == 4 else "TCP6"
        line = f"PROXY {kind} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
        return line.encode(), ProxyHeader(1, source, destination)
    tlvs = b"".join(
        tlv(kind, value)
        for kind, value in draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40))))
    )
    return v2_proxy(source, destination, tlvs), ProxyHeader(2, source, destination)


@given(headers(), st.binary(max_size=40), st.lists(st.integers(1, 20), max_size=20))
def test_any_valid_header_reads_the_same_however_split(
    header: tuple[bytes, ProxyHeader], rest: bytes, chunks: list[int]
) -> None:
    data, expected = header
    assert read(data + rest, chunks)[0] == expected
    assert read_as_told(data + rest) == (expected, len(data))


@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=10))
def test_random_bytes_give_only_need_data_a_header_or_a_protocol_error(
    data: bytes, chunks: list[int]
) -> None:
    reader, at = ProxyHeaderReader(), 0
    for size in [*chunks, len(data)]:
        reader.receive_data(data[at : at + size])
        at += size
        try:
            event = reader.next_event()
        except ProxyProtocolError:
            return
        assert event is NEED_DATA or isinstance(event, ProxyHeader)
        assert (reader.wanted == 0) == isinstance(event, ProxyHeader)


@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_after_either_signature_never_crash(tail: bytes) -> None:
    for prefix in (b"PROXY ", V2_SIGNATURE):
        reader = ProxyHeaderReader()
        reader.receive_data(prefix + tail)
        try:
            event = reader.next_event()
        except ProxyProtocolError:
            continue
        assert event is NEED_DATA or isinstance(event, ProxyHeader)
