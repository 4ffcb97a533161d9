"""The MQTT CONNECT reader and the refusals, against a test encoder and against paho-mqtt.

The small encoder below is test-only and deliberately separate from the parser; the paho
tests pin it down by comparing its bytes with what the real client library sends over a
real socket, and check that paho reads our CONNACK and DISCONNECT as meant.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway.proxy.mqtt import (
    MAX_CONNECT_SIZE,
    ConnectPacket,
    ConnectReader,
    DisconnectReason,
    MqttConnectError,
    connack_bad_authentication_method,
    connack_bad_credentials,
    connack_bad_packet,
    connack_for_error,
    connack_not_authorized,
    disconnect,
    disconnect_for_revocation,
    parse_connect,
)

# --- a test-only encoder -----------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return len(raw).to_bytes(2, "big") + raw


def props(*items: tuple[int, bytes]) -> bytes:
    """A property list: identifier, then the value already encoded."""
    body = b"".join(bytes((ident,)) + value for ident, value in items)
    return varint(len(body)) + body


def pair(name: str, value: str) -> bytes:
    return field(name) + field(value)


@dataclass(frozen=True)
class Will:
    topic: str = "status/c1"
    payload: bytes = b"gone"
    qos: int = 0
    retain: bool = False
    properties: bytes = b"\x00"  # MQTT 5 only


@dataclass(frozen=True)
class Connect:
    level: int = 4
    client_id: str = "c1"
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    keep_alive: int = 60
    clean: bool = True
    properties: bytes = b"\x00"  # MQTT 5 only
    name: bytes | None = None  # default: the level's own protocol name
    extra_flags: int = 0  # OR-ed into the connect flags, for malformed cases
    tail: bytes = b""  # appended inside the packet, for malformed cases

    def encode(self) -> bytes:
        name = self.name if self.name is not None else (b"MQIsdp" if self.level == 3 else b"MQTT")
        flags = self.extra_flags | (0x02 if self.clean else 0)
        if self.will is not None:
            flags |= 0x04 | (self.will.qos << 3) | (0x20 if self.will.retain else 0)
        if self.username is not None:
            flags |= 0x80
        if self.password is not None:
            flags |= 0x40
        body = field(name) + bytes((self.level, flags)) + self.keep_alive.to_bytes(2, "big")
        if self.level == 5:
            body += self.properties
        body += field(self.client_id)
        if self.will is not None:
            if self.level == 5:
                body += self.will.properties
            body += field(self.will.topic) + field(self.will.payload)
        if self.username is not None:
            body += field(self.username)
        if self.password is not None:
            body += field(self.password)
        body += self.tail
        return b"\x10" + varint(len(body)) + body


def expected(connect: Connect, raw: bytes, auth_method: str | None = None) -> ConnectPacket:
    return ConnectPacket(
        protocol_level=connect.level,
        client_id=connect.client_id,
        username=connect.username,
        password=connect.password,
        keep_alive=connect.keep_alive,
        clean_start=connect.clean,
        raw=raw,
        auth_method=auth_method,
    )


def error_of(raw: bytes, **reader: Any) -> MqttConnectError:
    with pytest.raises(MqttConnectError) as caught:
        ConnectReader(**reader).feed(raw)
    return caught.value


TOKEN = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2ln"
FULL_V5_PROPERTIES = props(
    (0x11, (3600).to_bytes(4, "big")),
    (0x21, (20).to_bytes(2, "big")),
    (0x27, (1 << 20).to_bytes(4, "big")),
    (0x22, (10).to_bytes(2, "big")),
    (0x19, b"\x01"),
    (0x17, b"\x00"),
    (0x26, pair("sdk", "js")),
    (0x26, pair("sdk", "again")),
)
FULL_WILL_PROPERTIES = props(
    (0x18, (30).to_bytes(4, "big")),
    (0x01, b"\x01"),
    (0x02, (60).to_bytes(4, "big")),
    (0x03, field("text/plain")),
    (0x08, field("replies/c1")),
    (0x09, field(b"\x00\x01corr")),
    (0x26, pair("k", "v")),
)

VALID = {
    "3.1 bare": Connect(level=3),
    "3.1 credentials": Connect(level=3, username="bob", password=TOKEN),
    "3.1.1 bare": Connect(),
    "3.1.1 empty client id, no clean session": Connect(client_id="", clean=False),
    "3.1.1 username only": Connect(username="bob"),
    "3.1.1 credentials": Connect(username="bob", password=TOKEN, keep_alive=0),
    "3.1.1 empty password": Connect(username="bob", password=b""),
    "3.1.1 binary password": Connect(username="bob", password=bytes(range(256))),
    "3.1.1 will qos 2 retained": Connect(will=Will(qos=2, retain=True), username="bob",
                                         password=TOKEN),
    "3.1.1 will qos 1, empty payload": Connect(will=Will(qos=1, payload=b"")),
    "3.1.1 unicode": Connect(client_id="Zoë-日本-🚀", username="ユーザー", password=TOKEN),
    "3.1.1 keep alive max": Connect(keep_alive=65535),
    "5 bare": Connect(level=5),
    "5 credentials": Connect(level=5, username="bob", password=TOKEN),
    "5 password without username": Connect(level=5, password=TOKEN),
    "5 all properties and a will": Connect(
        level=5, username="bob", password=TOKEN, properties=FULL_V5_PROPERTIES,
        will=Will(qos=1, properties=FULL_WILL_PROPERTIES), clean=False,
    ),
    "5 will without properties": Connect(level=5, will=Will()),
    "5 long client id": Connect(level=5, client_id="x" * 300),
}


# --- valid packets -----------------------------------------------------------------------


@pytest.mark.parametrize("connect", VALID.values(), ids=VALID.keys())
def test_valid_connect_is_read_whole(connect: Connect) -> None:
    raw = connect.encode()
    reader = ConnectReader()
    packet = reader.feed(raw)
    assert packet == expected(connect, raw)
    assert packet.raw is not None and reader.trailing == b"" and reader.buffered == 0
    assert parse_connect(raw) == packet


@pytest.mark.parametrize(
    "connect", [VALID["3.1.1 will qos 2 retained"], VALID["5 all properties and a will"],
                VALID["3.1 credentials"]],
    ids=["3.1.1", "5", "3.1"],
)
def test_every_split_point(connect: Connect) -> None:
    raw = connect.encode()
    for cut in range(len(raw) + 1):
        reader = ConnectReader()
        first = reader.feed(raw[:cut])
        if cut < len(raw):
            assert first is None
            assert reader.buffered == cut
            assert reader.feed(raw[cut:]) == expected(connect, raw)
        else:
            assert first == expected(connect, raw)


def test_byte_by_byte_and_in_three_pieces() -> None:
    connect = VALID["5 all properties and a will"]
    raw = connect.encode()
    reader = ConnectReader()
    results = [reader.feed(raw[i : i + 1]) for i in range(len(raw))]
    assert results[:-1] == [None] * (len(raw) - 1)
    assert results[-1] == expected(connect, raw)
    for a in range(0, len(raw), 7):
        for b in range(a, len(raw), 11):
            reader = ConnectReader()
            assert reader.feed(raw[:a]) is None
            assert reader.feed(raw[a:b]) is None
            assert reader.feed(raw[b:]) == expected(connect, raw)


def test_packets_after_the_connect_are_trailing() -> None:
    connect = VALID["3.1.1 credentials"]
    raw = connect.encode()
    pingreq, subscribe = b"\xc0\x00", b"\x82\x08\x00\x01\x00\x03a/b\x00"
    reader = ConnectReader()
    assert reader.feed(raw[:5]) is None
    packet = reader.feed(raw[5:] + pingreq + subscribe[:3])
    assert packet == expected(connect, raw)
    assert reader.trailing == pingreq + subscribe[:3]
    assert reader.buffered == 0
    # Trailing bytes are forwarded as they are, never parsed: even garbage is not our error.
    reader = ConnectReader()
    assert reader.feed(raw + b"\xff\xff\xff\xff\xff") is not None
    assert reader.trailing == b"\xff" * 5


def test_empty_feeds_change_nothing() -> None:
    reader = ConnectReader()
    assert reader.feed(b"") is None
    assert reader.feed(b"\x10") is None
    assert reader.feed(b"") is None
    raw = Connect().encode()
    assert reader.feed(raw[1:]) == expected(Connect(), raw)


def test_v5_authentication_method_is_reported() -> None:
    connect = Connect(
        level=5,
        properties=props((0x15, field("SCRAM-SHA-1")), (0x16, field(b"client-first"))),
    )
    raw = connect.encode()
    packet = parse_connect(raw)
    assert packet == expected(connect, raw, auth_method="SCRAM-SHA-1")
    assert parse_connect(Connect(level=5).encode()).auth_method is None


def test_feeding_after_the_packet_is_a_programming_error() -> None:
    reader = ConnectReader()
    assert reader.feed(Connect().encode()) is not None
    with pytest.raises(RuntimeError):
        reader.feed(b"\xc0\x00")


def test_an_error_sticks() -> None:
    reader = ConnectReader()
    with pytest.raises(MqttConnectError) as first:
        reader.feed(b"\x30\x00")
    with pytest.raises(MqttConnectError) as again:
        reader.feed(Connect().encode())
    assert again.value is first.value
    assert reader.buffered == 0


def test_the_password_stays_out_of_repr() -> None:
    packet = parse_connect(Connect(username="bob", password=TOKEN).encode())
    assert TOKEN.decode() not in repr(packet)
    assert "bob" in repr(packet)


def test_memoryview_and_bytearray_are_accepted() -> None:
    raw = Connect(username="bob", password=TOKEN).encode()
    reader = ConnectReader()
    assert reader.feed(memoryview(raw)[:10]) is None
    assert reader.feed(bytearray(raw[10:])) == parse_connect(raw)


def test_max_size_must_hold_a_header() -> None:
    with pytest.raises(ValueError):
        ConnectReader(max_size=1)
    assert ConnectReader().max_size == MAX_CONNECT_SIZE == 65536


# --- the size limit ----------------------------------------------------------------------


def test_a_packet_of_exactly_max_size_is_accepted_one_more_byte_is_not() -> None:
    raw = Connect(username="bob", password=b"p" * 1000).encode()
    assert ConnectReader(max_size=len(raw)).feed(raw) is not None
    reader = ConnectReader(max_size=len(raw) - 1)
    with pytest.raises(MqttConnectError, match=rf"CONNECT of {len(raw)} bytes is over the"):
        reader.feed(raw[:4])  # the header is enough: no waiting for the body
    assert reader.buffered == 0


def test_oversized_remaining_length_is_refused_from_the_header_alone() -> None:
    header = b"\x10" + varint(70_000)  # 3-byte varint, nothing of the body
    error = error_of(header)
    assert "70004 bytes is over the 65536-byte limit" in error.reason
    assert error.protocol_level is None and connack_for_error(error) is None


def test_oversize_is_refused_before_the_header_is_even_complete() -> None:
    # Two continuation bytes mean at least 128**2 more bytes: over a 1000-byte limit.
    reader = ConnectReader(max_size=1000)
    assert reader.feed(b"\x10\x80") is None  # could still be 128..16383
    with pytest.raises(MqttConnectError, match="at least"):
        reader.feed(b"\x80")
    with pytest.raises(MqttConnectError, match="at least"):
        ConnectReader().feed(b"\x10\xff\xff\xff")  # >= 2 MiB against 64 KiB


def test_largest_remaining_length_with_a_huge_limit() -> None:
    reader = ConnectReader(max_size=1 << 30)
    assert reader.feed(b"\x10\xff\xff\xff\x7f") is None  # 268,435,455: legal, wait for it
    assert reader.buffered == 5


# --- malformed packets -------------------------------------------------------------------

V311 = Connect(username="bob", password=TOKEN)
V5 = Connect(level=5, username="bob", password=TOKEN)


def _body(raw: bytes) -> bytes:
    """A packet's bytes after a 1-byte remaining length (the test packets are short)."""
    assert raw[1] < 0x80
    return raw[2:]


def _repack(body: bytes) -> bytes:
    return b"\x10" + varint(len(body)) + body


def _truncated_inside(connect: Connect, keep: int) -> bytes:
    """The packet cut after `keep` body bytes, with a remaining length that says so."""
    return _repack(_body(connect.encode())[:keep])


MALFORMED: dict[str, tuple[bytes, str]] = {
    "PUBLISH first": (b"\x30\x05\x00\x01a\x00\x00", "first packet is PUBLISH, not CONNECT"),
    "PINGREQ first": (b"\xc0\x00", "first packet is PINGREQ"),
    "AUTH first": (b"\xf0\x00", "first packet is AUTH"),
    "reserved type 0": (b"\x00\x00", "reserved type 0"),
    "CONNECT with flags": (b"\x12" + V311.encode()[1:], "reserved flags 0x2"),
    "remaining length not minimal": (
        b"\x10\x80\x00", "remaining length: not minimally encoded"),
    "unknown protocol name": (Connect(name=b"MQTX").encode(), "unknown protocol name b'MQTX'"),
    "empty protocol name": (Connect(name=b"").encode(), "unknown protocol name b''"),
    "MQTT with level 3": (Connect(level=3, name=b"MQTT").encode(), "MQTT with level 3"),
    "MQIsdp with level 4": (Connect(name=b"MQIsdp").encode(), "MQIsdp with level 4"),
    "MQIsdp with level 5": (Connect(level=5, name=b"MQIsdp").encode(), "MQIsdp with level 5"),
    "reserved connect flag": (Connect(extra_flags=0x01).encode(), "reserved connect flag"),
    "v5 reserved connect flag": (Connect(level=5, extra_flags=0x01).encode(), "reserved"),
    "password without username 3.1.1": (
        Connect(password=TOKEN).encode(), "password flag without username flag"),
    "password without username 3.1": (
        Connect(level=3, password=TOKEN).encode(), "password flag without username flag"),
    "will QoS 3": (Connect(will=Will(qos=3)).encode(), "will QoS 3"),
    "will QoS without will flag": (
        Connect(extra_flags=0x08).encode(), "will QoS or will retain set without the will flag"),
    "will QoS 2 without will flag": (Connect(extra_flags=0x10).encode(), "without the will"),
    "will retain without will flag": (Connect(extra_flags=0x20).encode(), "without the will"),
    "will flag without will fields": (
        Connect(extra_flags=0x04).encode(), "will topic: truncated"),
    "username flag without username": (
        Connect(extra_flags=0x80).encode(), "username: truncated"),
    "password flag without password": (
        Connect(username="bob", extra_flags=0x40).encode(), "password: truncated"),
    "empty body": (b"\x10\x00", "protocol name: truncated"),
    "protocol name length cut": (_truncated_inside(V311, 1), "protocol name: truncated"),
    "protocol name cut": (_truncated_inside(V311, 4), "protocol name: length 4 points past"),
    "level missing": (_truncated_inside(V311, 6), "protocol level: truncated"),
    "flags missing": (_truncated_inside(V311, 7), "connect flags: truncated"),
    "keep alive cut": (_truncated_inside(V311, 9), "keep alive: truncated"),
    "client id missing": (_truncated_inside(V311, 10), "client identifier: truncated"),
    "client id length past the end": (
        _repack(_body(Connect().encode())[:10] + b"\x00\x64c1"),
        "client identifier: length 100 points past the end of the packet"),
    "username past the end": (_truncated_inside(V311, 17), "username: length 3 points past"),
    "password cut": (V311.encode()[:-1], "remaining length"),  # see the reader test below
    "bytes after the password": (
        Connect(username="bob", password=TOKEN, tail=b"\x00").encode(),
        "1 bytes after the last CONNECT field"),
    "bytes after the client id": (Connect(tail=b"xy").encode(), "2 bytes after the last"),
    "client id not UTF-8": (
        _repack(_body(Connect().encode())[:10] + field(b"\xc3\x28")),
        "client identifier: invalid UTF-8"),
    "username overlong UTF-8": (
        _repack(_body(Connect(extra_flags=0x80).encode()) + field(b"\xc0\xaf")),
        "username: invalid UTF-8"),
    "username surrogate": (
        _repack(_body(Connect(extra_flags=0x80).encode()) + field(b"\xed\xa0\x80")),
        "username: invalid UTF-8"),
    "username with NUL": (Connect(username="bo\x00b").encode(), "username: contains U+0000"),
    "will topic not UTF-8": (
        _repack(_body(Connect(extra_flags=0x04).encode()) + field(b"\xff") + field(b"x")),
        "will topic: invalid UTF-8"),
    "will payload past the end": (
        _repack(_body(Connect(extra_flags=0x04).encode()) + field("t") + b"\x00\x09ab"),
        "will payload: length 9 points past"),
    "v5 properties length past the end": (
        Connect(level=5, properties=b"\x40").encode(),
        "CONNECT properties: length 64 points past the end of the packet"),
    "v5 properties length varint too long": (
        Connect(level=5, properties=b"\x80\x80\x80\x80\x01").encode(),
        "CONNECT properties length: more than 4 bytes"),
    "v5 properties length not minimal": (
        Connect(level=5, properties=b"\x80\x00").encode(), "not minimally encoded"),
    "v5 properties length cut": (
        _repack(_body(Connect(level=5).encode())[:10] + b"\x80"),
        "CONNECT properties length: truncated"),
    "v5 unknown property": (
        Connect(level=5, properties=props((0x7F, b"\x00"))).encode(),
        "CONNECT properties: property 0x7f is not allowed here"),
    "v5 will property in CONNECT": (
        Connect(level=5, properties=props((0x01, b"\x00"))).encode(),
        "property 0x01 is not allowed here"),
    "v5 CONNACK property in CONNECT": (
        Connect(level=5, properties=props((0x13, b"\x00\x10"))).encode(),
        "property 0x13 is not allowed here"),
    "v5 CONNECT property in will": (
        Connect(level=5, will=Will(properties=props((0x11, b"\x00\x00\x00\x01")))).encode(),
        "will properties: property 0x11 is not allowed here"),
    "v5 duplicate session expiry": (
        Connect(level=5, properties=props((0x11, bytes(4)), (0x11, bytes(4)))).encode(),
        "CONNECT properties: Session Expiry Interval appears twice"),
    "v5 duplicate authentication method": (
        Connect(level=5, properties=props((0x15, field("a")), (0x15, field("b")))).encode(),
        "Authentication Method appears twice"),
    "v5 duplicate will delay": (
        Connect(level=5, will=Will(properties=props((0x18, bytes(4)), (0x18, bytes(4))))
                ).encode(), "will properties: Will Delay Interval appears twice"),
    "v5 receive maximum 0": (
        Connect(level=5, properties=props((0x21, b"\x00\x00"))).encode(),
        "Receive Maximum must not be 0"),
    "v5 maximum packet size 0": (
        Connect(level=5, properties=props((0x27, bytes(4)))).encode(),
        "Maximum Packet Size must not be 0"),
    "v5 request problem information 2": (
        Connect(level=5, properties=props((0x17, b"\x02"))).encode(),
        "Request Problem Information must be 0 or 1, not 2"),
    "v5 payload format indicator 7": (
        Connect(level=5, will=Will(properties=props((0x01, b"\x07")))).encode(),
        "Payload Format Indicator must be 0 or 1"),
    "v5 authentication data without method": (
        Connect(level=5, properties=props((0x16, field(b"x")))).encode(),
        "Authentication Data without Authentication Method"),
    "v5 property value cut by the property length": (
        Connect(level=5, properties=b"\x03\x11\x00\x00").encode(),
        "CONNECT properties: Session Expiry Interval: truncated"),
    "v5 property string past the properties": (
        Connect(level=5, properties=b"\x04\x15\x00\x05a").encode(),
        "Authentication Method: length 5 points past the end of the properties"),
    "v5 user property value missing": (
        Connect(level=5, properties=b"\x04\x26\x00\x01k").encode(),
        "User Property value: truncated"),
    "v5 user property not UTF-8": (
        Connect(level=5, properties=props((0x26, field(b"\xfe") + field("v")))).encode(),
        "User Property name: invalid UTF-8"),
    "v5 content type with NUL": (
        Connect(level=5, will=Will(properties=props((0x03, field("a\x00"))))).encode(),
        "will properties: Content Type: contains U+0000"),
    "v5 will properties length past the end": (
        Connect(level=5, will=Will(properties=b"\x7f")).encode(),
        "will properties: length 127 points past"),
    "v5 properties swallowing the client id": (
        Connect(level=5, properties=b"\x01").encode(), "property 0x00 is not allowed here"),
}


@pytest.mark.parametrize(("raw", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_connect(raw: bytes, reason: str) -> None:
    reader = ConnectReader()
    with pytest.raises(MqttConnectError) as caught:
        # The last byte may be missing (a remaining length longer than the data): then the
        # reader waits, and parse_connect, which gets "complete" packets, says so.
        if reader.feed(raw) is None:
            parse_connect(raw)
    assert reason in caught.value.reason
    assert str(caught.value) == caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_a_truncated_packet_only_waits_in_the_reader() -> None:
    raw = V311.encode()
    reader = ConnectReader()
    assert reader.feed(raw[:-1]) is None
    assert reader.buffered == len(raw) - 1
    with pytest.raises(MqttConnectError, match="remaining length says"):
        parse_connect(raw[:-1])
    with pytest.raises(MqttConnectError, match="remaining length says"):
        parse_connect(raw + b"\x00")
    with pytest.raises(MqttConnectError, match="fixed header: truncated"):
        parse_connect(b"\x10")


def test_remaining_length_of_five_bytes() -> None:
    error = error_of(b"\x10\x80\x80\x80\x80\x01", max_size=1 << 30)
    assert error.reason == "remaining length: more than 4 bytes"


def test_errors_are_detected_on_the_first_byte() -> None:
    reader = ConnectReader()
    with pytest.raises(MqttConnectError, match="SUBSCRIBE"):
        reader.feed(b"\x82")


@pytest.mark.parametrize("level", [0, 1, 2, 6, 0x84, 255])
def test_unsupported_level_is_flagged_and_answered_in_the_3_1_1_format(level: int) -> None:
    error = error_of(Connect(level=level).encode())
    assert error.unsupported_version
    assert f"unsupported protocol level {level}" in error.reason
    assert connack_for_error(error) == b"\x20\x02\x00\x01"


@pytest.mark.parametrize(
    ("connect", "level", "answer"),
    [
        (Connect(will=Will(qos=3)), 4, None),
        (Connect(level=3, tail=b"x"), 3, None),
        (Connect(level=5, will=Will(qos=3)), 5, b"\x20\x03\x00\x81\x00"),
        (Connect(level=5, properties=props((0x7F, b""))), 5, b"\x20\x03\x00\x81\x00"),
        (Connect(level=5, tail=b"x"), 5, b"\x20\x03\x00\x81\x00"),
    ],
)
def test_errors_after_the_level_carry_it(
    connect: Connect, level: int, answer: bytes | None
) -> None:
    error = error_of(connect.encode())
    assert error.protocol_level == level and not error.unsupported_version
    assert connack_for_error(error) == answer


@pytest.mark.parametrize(
    "raw", [b"\x30\x00", Connect(name=b"MQTX").encode(), Connect(level=3, name=b"MQTT").encode()]
)
def test_errors_before_a_level_is_known_are_just_closed(raw: bytes) -> None:
    error = error_of(raw)
    assert error.protocol_level is None
    assert connack_for_error(error) is None


# --- answers -----------------------------------------------------------------------------


def test_answers_bytes() -> None:
    for legacy in (3, 4):
        assert connack_not_authorized(legacy) == b"\x20\x02\x00\x05"
        assert connack_bad_credentials(legacy) == b"\x20\x02\x00\x04"
        assert connack_bad_packet(legacy) is None
        assert disconnect_for_revocation(legacy) is None
        assert disconnect(legacy, DisconnectReason.SERVER_SHUTTING_DOWN) is None
    assert connack_not_authorized(5) == b"\x20\x03\x00\x87\x00"
    assert connack_bad_credentials(5) == b"\x20\x03\x00\x86\x00"
    assert connack_bad_packet(5) == b"\x20\x03\x00\x81\x00"
    assert connack_bad_authentication_method() == b"\x20\x03\x00\x8c\x00"
    assert disconnect_for_revocation(5) == b"\xe0\x02\x87\x00"
    assert disconnect(5, DisconnectReason.SERVER_SHUTTING_DOWN) == b"\xe0\x02\x8b\x00"
    assert disconnect(5, DisconnectReason.ADMINISTRATIVE_ACTION) == b"\xe0\x02\x98\x00"
    assert disconnect(5, DisconnectReason.MAXIMUM_CONNECT_TIME) == b"\xe0\x02\xa0\x00"


@pytest.mark.parametrize(
    "answer",
    [connack_not_authorized, connack_bad_credentials, connack_bad_packet,
     disconnect_for_revocation],
)
@pytest.mark.parametrize("level", [0, 2, 6, 0x84])
def test_answers_refuse_unknown_levels(answer: Any, level: int) -> None:
    with pytest.raises(ValueError):
        answer(level)


# --- against paho-mqtt, over a real socket -----------------------------------------------

PAHO_VERSIONS = {3: paho.MQTTv31, 4: paho.MQTTv311, 5: paho.MQTTv5}


@dataclass
class PahoSession:
    client: paho.Client
    server: socket.socket  # the accepted connection, our end
    connects: list[ReasonCode]
    disconnects: list[ReasonCode]

    def first_packet(self) -> tuple[ConnectPacket, bytes]:
        """Read what paho sent through ConnectReader, chunk by chunk as it arrives."""
        reader = ConnectReader()
        received = b""
        while True:
            chunk = self.server.recv(7)  # small reads: the reader must reassemble
            assert chunk, "paho closed before its CONNECT was complete"
            received += chunk
            packet = reader.feed(chunk)
            if packet is not None:
                assert packet.raw + reader.trailing == received
                return packet, packet.raw

    def run_until(self, done: list[ReasonCode]) -> ReasonCode:
        for _ in range(50):
            if done:
                return done[0]
            self.client.loop(timeout=0.1)
        raise AssertionError("paho did not call back")


@contextmanager
def paho_session(level: int, setup: Any = None, **connect: Any) -> Iterator[PahoSession]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="sdk-1", protocol=PAHO_VERSIONS[level]
    )
    client.reconnect_delay_set(60, 60)
    connects: list[ReasonCode] = []
    disconnects: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: connects.append(reason)
    client.on_disconnect = lambda _c, _u, _f, reason, _p: disconnects.append(reason)
    if setup is not None:
        setup(client)
    try:
        # No loop thread: connect() opens the socket and writes the CONNECT itself.
        client.connect("127.0.0.1", listener.getsockname()[1], **connect)
        server, _ = listener.accept()
        server.settimeout(5)
        try:
            yield PahoSession(client, server, connects, disconnects)
        finally:
            server.close()
    finally:
        client.disconnect()
        sock = client.socket()
        if sock is not None:
            sock.close()
        listener.close()


def _v5_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 20
    properties.UserProperty = ("sdk", "js")
    return properties


def _v5_will_properties() -> Properties:
    properties = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
    properties.WillDelayInterval = 30
    properties.ContentType = "text/plain"
    return properties


def _packed(properties: Properties) -> bytes:
    return bytes(properties.pack())  # type: ignore[no-untyped-call]


def _credentials(client: paho.Client) -> None:
    client.username_pw_set("bob", TOKEN.decode())


def _credentials_and_will(client: paho.Client) -> None:
    _credentials(client)
    will_properties = _v5_will_properties() if client.protocol == MQTTProtocolVersion.MQTTv5 \
        else None
    client.will_set("status/sdk-1", b"gone", qos=1, retain=True, properties=will_properties)


PAHO_CASES: dict[str, tuple[int, Any, dict[str, Any], Connect]] = {
    "3.1 credentials": (3, _credentials, {}, Connect(
        level=3, client_id="sdk-1", username="bob", password=TOKEN)),
    "3.1.1 bare": (4, None, {"keepalive": 30}, Connect(client_id="sdk-1", keep_alive=30)),
    "3.1.1 username only": (4, lambda c: c.username_pw_set("bob"), {}, Connect(
        client_id="sdk-1", username="bob")),
    "3.1.1 credentials and will": (4, _credentials_and_will, {}, Connect(
        client_id="sdk-1", username="bob", password=TOKEN,
        will=Will(topic="status/sdk-1", qos=1, retain=True))),
    "5 bare": (5, None, {"clean_start": False}, Connect(
        level=5, client_id="sdk-1", clean=False)),
    "5 credentials": (5, _credentials, {"clean_start": True}, Connect(
        level=5, client_id="sdk-1", username="bob", password=TOKEN)),
    "5 everything": (5, _credentials_and_will, {"properties": _v5_properties()}, Connect(
        level=5, client_id="sdk-1", username="bob", password=TOKEN,
        properties=_packed(_v5_properties()),
        will=Will(topic="status/sdk-1", qos=1, retain=True,
                  properties=_packed(_v5_will_properties())))),
}


@pytest.mark.parametrize(
    ("level", "setup", "connect", "spec"), PAHO_CASES.values(), ids=PAHO_CASES.keys()
)
def test_paho_connect_is_read_and_matches_the_test_encoder(
    level: int, setup: Any, connect: dict[str, Any], spec: Connect
) -> None:
    with paho_session(level, setup, **connect) as session:
        packet, raw = session.first_packet()
    assert raw == spec.encode()  # the test encoder is faithful, so the tables above are too
    assert packet == expected(spec, raw)


@pytest.mark.parametrize(
    ("level", "answer", "reason"),
    [
        (3, connack_not_authorized, "Not authorized"),
        (4, connack_not_authorized, "Not authorized"),
        (5, connack_not_authorized, "Not authorized"),
        (4, connack_bad_credentials, "Bad user name or password"),
        (5, connack_bad_credentials, "Bad user name or password"),
        (5, connack_bad_packet, "Malformed packet"),
        (5, lambda _level: connack_bad_authentication_method(), "Bad authentication method"),
    ],
)
def test_paho_reads_our_connack(level: int, answer: Any, reason: str) -> None:
    with paho_session(level, _credentials) as session:
        packet, _ = session.first_packet()
        session.server.sendall(answer(packet.protocol_level))
        code = session.run_until(session.connects)
    assert code.getName() == reason
    assert code.is_failure


def test_paho_reads_our_v5_disconnect_for_revocation() -> None:
    with paho_session(5, _credentials) as session:
        session.first_packet()
        session.server.sendall(b"\x20\x03\x00\x00\x00")  # CONNACK success
        assert session.run_until(session.connects).getName() == "Success"
        session.server.sendall(disconnect_for_revocation(5) or b"")
        code = session.run_until(session.disconnects)
    assert code.getName() == "Not authorized"
    assert code.value == 0x87


# --- properties: random inputs -----------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


@st.composite
def v5_properties(draw: st.DrawFn, *, will: bool) -> tuple[bytes, str | None]:
    """A valid property list in random order, and its authentication method."""
    u32 = st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big"))
    choices: dict[int, st.SearchStrategy[bytes]]
    if will:
        choices = {
            0x18: u32, 0x01: st.sampled_from([b"\x00", b"\x01"]), 0x02: u32,
            0x03: TEXT.map(field), 0x08: TEXT.map(field), 0x09: st.binary(max_size=20).map(field),
        }
    else:
        choices = {
            0x11: u32,
            0x21: st.integers(1, 65535).map(lambda n: n.to_bytes(2, "big")),
            0x27: st.integers(1, 2**32 - 1).map(lambda n: n.to_bytes(4, "big")),
            0x22: st.integers(0, 65535).map(lambda n: n.to_bytes(2, "big")),
            0x19: st.sampled_from([b"\x00", b"\x01"]),
            0x17: st.sampled_from([b"\x00", b"\x01"]),
        }
    chosen = draw(st.sets(st.sampled_from(sorted(choices))))
    items = [(ident, draw(choices[ident])) for ident in chosen]
    items += [(0x26, pair(k, v)) for k, v in draw(st.lists(st.tuples(TEXT, TEXT), max_size=3))]
    method: str | None = None
    if not will and draw(st.booleans()):
        method = draw(TEXT)
        items.append((0x15, field(method)))
        if draw(st.booleans()):
            items.append((0x16, field(draw(st.binary(max_size=30)))))
    return props(*draw(st.permutations(items))), method


@st.composite
def valid_connects(draw: st.DrawFn) -> tuple[Connect, str | None]:
    level = draw(st.sampled_from([3, 4, 5]))
    username = draw(st.none() | TEXT)
    password = draw(st.none() | st.binary(max_size=64))
    if level < 5 and username is None:
        password = None
    will = None
    if draw(st.booleans()):
        will = Will(
            topic=draw(TEXT),
            payload=draw(st.binary(max_size=64)),
            qos=draw(st.integers(0, 2)),
            retain=draw(st.booleans()),
            properties=draw(v5_properties(will=True))[0] if level == 5 else b"\x00",
        )
    properties, method = draw(v5_properties(will=False)) if level == 5 else (b"\x00", None)
    connect = Connect(
        level=level, client_id=draw(TEXT), username=username, password=password, will=will,
        keep_alive=draw(st.integers(0, 65535)), clean=draw(st.booleans()),
        properties=properties,
    )
    return connect, method


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# No example database: it would write .hypothesis/ into the checkout.
FUZZ = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(case=valid_connects(), cuts=st.lists(st.integers(0, 400), max_size=5),
       trailing=st.binary(max_size=8))
def test_random_valid_connects_round_trip(
    case: tuple[Connect, str | None], cuts: list[int], trailing: bytes
) -> None:
    connect, method = case
    raw = connect.encode()
    stream = raw + trailing
    pieces = chunks(stream, cuts)
    reader = ConnectReader()
    packet, fed = None, 0
    while packet is None:
        assert fed < len(pieces), "the reader never returned the packet"
        packet = reader.feed(pieces[fed])
        fed += 1
    assert packet == expected(connect, raw, method)
    assert packet.raw + reader.trailing + b"".join(pieces[fed:]) == stream


@FUZZ
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=4),
       max_size=st.sampled_from([2, 16, 100, 300, MAX_CONNECT_SIZE]))
def test_random_bytes_only_ever_raise_connect_errors(
    data: bytes, cuts: list[int], max_size: int
) -> None:
    reader = ConnectReader(max_size=max_size)
    fed = b""
    try:
        for piece in chunks(data, cuts):
            fed += piece
            packet = reader.feed(piece)
            if packet is None:
                assert reader.buffered == len(fed) < max_size  # never more than the limit
            else:
                assert len(packet.raw) <= max_size
                assert packet.raw + reader.trailing == fed
                break
    except MqttConnectError as exc:
        assert exc.reason


@FUZZ
@given(body=st.binary(max_size=200))
def test_random_bodies_behind_a_valid_header(body: bytes) -> None:
    raw = _repack(body)
    try:
        packet = parse_connect(raw)
    except MqttConnectError:
        return
    assert packet.raw == raw and packet.protocol_level in (3, 4, 5)


@FUZZ
@given(case=valid_connects(), data=st.data())
def test_mutated_valid_connects_only_ever_raise_connect_errors(
    case: tuple[Connect, str | None], data: st.DataObject
) -> None:
    raw = bytearray(case[0].encode())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            raw[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete" and len(raw) > 1:
            del raw[position]
        else:
            raw.insert(position, data.draw(st.integers(0, 255)))
    for candidate in (bytes(raw), _repack(bytes(raw[2:]))):  # as is, and re-lengthed
        with contextlib.suppress(MqttConnectError):
            ConnectReader().feed(candidate)
        with contextlib.suppress(MqttConnectError):
            parse_connect(candidate)
