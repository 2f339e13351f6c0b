"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2), sans-I/O.

A load balancer that relays TCP connections sends this header first, before
any byte of the client's, to say where the client connected from. Version 1
is one text line (``PROXY TCP4 203.0.113.7 192.0.2.1 51234 993\\r\\n``), at
most 107 bytes with its CRLF (spec section 2.1); version 2 is binary: a
12-byte signature, a version and command byte, an address family and
transport byte, a 16-bit length and that many bytes of addresses and TLVs
(section 2.2). :class:`ProxyHeaderReader` tells them apart by their first
bytes.

The reader never asks for more bytes than the header can still take
(:attr:`ProxyHeaderReader.wanted`): a caller that reads exactly that many
from the socket leaves whatever follows (an implicit-TLS ClientHello) in the
kernel for the next reader. Bytes fed beyond the header are kept in
:attr:`ProxyHeaderReader.trailing`.

A header that carries no client address (v1 ``UNKNOWN``; v2 ``LOCAL``, a
load balancer's own health check; v2 ``AF_UNSPEC`` or ``AF_UNIX``) gives a
:class:`ProxyHeader` whose ``source`` is None: the connection's own peer is
the client (sections 2.1 and 2.2). Anything malformed, truncated or over the
limits raises :class:`ProxyProtocolError` with the reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeAlias

from lightmail.sansio import NEED_DATA, Sentinel

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
Endpoint: TypeAlias = tuple[IPAddress, int]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107  # section 2.1: the longest line, CRLF included
V1_MIN_LENGTH = len(b"PROXY UNKNOWN\r\n")
V2_FIXED_LENGTH = 16  # signature, ver_cmd, fam, len (section 2.2)
# Addresses and TLVs a v2 header may carry. HAProxy's own TLVs (ALPN, authority,
# unique id, SSL details) take a few hundred bytes; the field allows 65535.
V2_MAX_LENGTH = 4096

_V2_LOCAL, _V2_PROXY = 0x0, 0x1
_V2_UNSPEC = 0x00
_V2_TCP4, _V2_TCP6, _V2_UNIX_STREAM = 0x11, 0x21, 0x31
_V2_DATAGRAM = (0x12, 0x22, 0x32)
_V2_ADDRESS_LENGTH = {_V2_UNSPEC: 0, _V2_TCP4: 12, _V2_TCP6: 36, _V2_UNIX_STREAM: 216}


class ProxyProtocolError(ValueError):
    """The peer sent no valid PROXY header; ``str()`` says why, for the log."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """What a PROXY header said: ``source`` is the client's address and port and
    ``destination`` the one it connected to, or both None when the header carries
    none (use the connection's own peer)."""

    version: int
    source: Endpoint | None
    destination: Endpoint | None


class ProxyHeaderReader:
    """Reads one PROXY header, v1 or v2, from the first bytes of a connection.

    ``receive_data(bytes)`` then ``next_event()``: :data:`NEED_DATA` until the
    header is whole, then the :class:`ProxyHeader` (again on every later call).
    A bad header raises :class:`ProxyProtocolError` as soon as the bytes show it.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header: ProxyHeader | None = None
        self.trailing = b""  # bytes received after the header

    @property
    def wanted(self) -> int:
        """The most bytes to read next without reading past the header: 0 once
        the header is complete (or known bad)."""
        if self._header is not None:
            return 0
        data = self._buffer
        if data[:12] == V2_SIGNATURE[: len(data)] and len(data) >= V2_FIXED_LENGTH:
            return V2_FIXED_LENGTH + int.from_bytes(data[14:16], "big") - len(data)
        if len(data) < V1_MIN_LENGTH:  # shorter than both versions' smallest header
            return V1_MIN_LENGTH - len(data)
        if data[:12] == V2_SIGNATURE[: len(data)]:
            return V2_FIXED_LENGTH - len(data)
        # v1: the line ends in CRLF, so at least one (after a CR) or two more bytes.
        return 1 if data.endswith(b"\r") else 2

    def receive_data(self, data: bytes) -> None:
        if self._header is not None:
            self.trailing += data
        else:
            self._buffer += data

    def next_event(self) -> ProxyHeader | Sentinel:
        """The header once it is whole, else :data:`NEED_DATA`; raises
        :class:`ProxyProtocolError` for anything that cannot become one."""
        if self._header is not None:
            return self._header
        data = bytes(self._buffer)
        if data[:12] == V2_SIGNATURE[: len(data)]:
            parsed = _parse_v2(data)
        elif data[:6] == V1_PREFIX[: len(data)]:
            parsed = _parse_v1(data)
        else:
            raise ProxyProtocolError("not a PROXY protocol header")
        if isinstance(parsed, Sentinel):
            return parsed
        header, length = parsed
        self._header = header
        self.trailing = data[length:]
        self._buffer.clear()
        return header


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | Sentinel:
    """Section 2.1: ``PROXY`` SP (``TCP4`` | ``TCP6`` | ``UNKNOWN``) ... CRLF."""
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if b"\n" in data[:V1_MAX_LENGTH] or b"\r" in data[: min(len(data), V1_MAX_LENGTH) - 1]:
            raise ProxyProtocolError("v1 header has a bare CR or LF")
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"v1 header longer than {V1_MAX_LENGTH} bytes")
        return NEED_DATA
    line = data[:end]
    if b"\n" in line or b"\r" in line:
        raise ProxyProtocolError("v1 header has a bare CR or LF")
    fields = line.split(b" ")
    if len(fields) < 2:
        raise ProxyProtocolError("v1 header names no protocol")
    family = fields[1]
    if family == b"UNKNOWN":  # the rest of the line is ignored (section 2.1)
        return ProxyHeader(1, None, None), end + 2
    kind: type[IPAddress]
    if family == b"TCP4":
        kind = ipaddress.IPv4Address
    elif family == b"TCP6":
        kind = ipaddress.IPv6Address
    else:
        raise ProxyProtocolError("v1 header has an unknown protocol")
    if len(fields) != 6:
        raise ProxyProtocolError("v1 header needs two addresses and two ports")
    source = (_v1_address(kind, fields[2]), _v1_port(fields[4]))
    destination = (_v1_address(kind, fields[3]), _v1_port(fields[5]))
    return ProxyHeader(1, source, destination), end + 2


def _v1_address(kind: type[IPAddress], text: bytes) -> IPAddress:
    try:
        return kind(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ProxyProtocolError("v1 header has a malformed address") from None


def _v1_port(text: bytes) -> int:
    """A decimal port from 0 to 65535, without leading zeros."""
    if not (text.isdigit() and text.isascii()) or (len(text) > 1 and text[0:1] == b"0"):
        raise ProxyProtocolError("v1 header has a malformed port")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError("v1 header has a port above 65535")
    return port


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | Sentinel:
    """Section 2.2: the signature, ver_cmd, fam, a big-endian length, then the
    address block and TLVs."""
    if len(data) < V2_FIXED_LENGTH:
        return NEED_DATA
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyProtocolError(f"v2 header has version {version}")
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise ProxyProtocolError(f"v2 header has an unknown command {command:#x}")
    length = int.from_bytes(data[14:16], "big")
    if length > V2_MAX_LENGTH:
        raise ProxyProtocolError(f"v2 header of {length} bytes, above {V2_MAX_LENGTH}")
    total = V2_FIXED_LENGTH + length
    if len(data) < total:
        return NEED_DATA
    if command == _V2_LOCAL:  # the proxy's own connection: the block is ignored
        return ProxyHeader(2, None, None), total
    family = data[13]
    if family in _V2_DATAGRAM:
        raise ProxyProtocolError("v2 header describes a datagram connection")
    needed = _V2_ADDRESS_LENGTH.get(family)
    if needed is None:
        raise ProxyProtocolError(f"v2 header has an unknown address family {family:#04x}")
    if length < needed:
        raise ProxyProtocolError("v2 header is shorter than its addresses")
    block = data[V2_FIXED_LENGTH:total]
    _check_tlvs(block[needed:])
    if family == _V2_TCP4:
        return ProxyHeader(2, *_v2_endpoints(block, 4, ipaddress.IPv4Address)), total
    if family == _V2_TCP6:
        return ProxyHeader(2, *_v2_endpoints(block, 16, ipaddress.IPv6Address)), total
    return ProxyHeader(2, None, None), total  # AF_UNSPEC, AF_UNIX: no client IP


def _v2_endpoints(block: bytes, size: int, kind: type[IPAddress]) -> tuple[Endpoint, Endpoint]:
    ports = 2 * size
    source = (kind(block[:size]), int.from_bytes(block[ports : ports + 2], "big"))
    destination = (kind(block[size:ports]), int.from_bytes(block[ports + 2 : ports + 4], "big"))
    return source, destination


def _check_tlvs(tlvs: bytes) -> None:
    """Each TLV is a type byte, a big-endian 16-bit length and that many bytes
    (section 2.2.7); their meaning is not needed, their shape is checked."""
    at = 0
    while at < len(tlvs):
        if len(tlvs) - at < 3:
            raise ProxyProtocolError("v2 header has a truncated TLV")
        at += 3 + int.from_bytes(tlvs[at + 1 : at + 3], "big")
        if at > len(tlvs):
            raise ProxyProtocolError("v2 header has a TLV longer than the header")
