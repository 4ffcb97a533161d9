"""The first packet of MQTT over WebSocket: read the CONNECT, answer a refusal. Pure, no I/O.

The SDK's MQTT connection (`/mqtt`, subprotocol `mqtt`, API.md section 4) carries its
credential in the CONNECT packet, not in the upgrade: username = the user's `_id`,
password = the access token. A caller checks it before anything reaches the broker:

    reader = ConnectReader()                        # max_size=64 KiB by default
    for each BINARY message from the client:        # MQTT over WS is binary only (6.0)
        packet = reader.feed(message)               # None: need more bytes
        if packet is not None:
            break
    # MqttConnectError: send connack_for_error(exc) if it is not None, then close.
    # Refused credential: send connack_not_authorized(packet.protocol_level), close.
    # Accepted: send packet.raw + reader.trailing upstream, untouched, then pump.

- `ConnectReader.feed(data) -> ConnectPacket | None` accumulates bytes across WebSocket
  messages (MQTT over WebSocket lets a packet span messages and a message hold several
  packets). It returns the packet once complete; bytes that came after it are in
  `reader.trailing` and must only be forwarded after the CONNECT was accepted (MQTT 5
  3.1.4: nothing after a refused CONNECT is processed). Once it has returned a packet it
  must not be fed again; once it has raised, it raises the same error on every feed.
- The size limit (`max_size`, the whole packet, fixed header included) is enforced as
  soon as the remaining length is known, or earlier when its first bytes already imply
  too much, so that between feeds the reader holds fewer than `max_size` bytes.
- `parse_connect(raw)` parses one complete packet (the reader uses it).
- `MqttConnectError(ValueError)`: `reason` says what is wrong; `protocol_level` is the
  level (3, 4, 5) when it was known before the fault; `unsupported_version` marks a
  well-named CONNECT of a level we do not speak.
- Answers, as bytes to send in one binary message: `connack_not_authorized`,
  `connack_bad_credentials`, `connack_bad_packet`, `connack_for_error`,
  `connack_bad_authentication_method`, and `disconnect_for_revocation` / `disconnect`
  (MQTT 5 only: 3.1.1 has no server DISCONNECT, the caller just closes). `None` means
  "nothing to send, just close".

Only the first CONNECT is checked here. A second one later in the stream is a protocol
violation the broker must close on (3.1.0-2 in 3.1.1 and 5). MQTT 5 enhanced
authentication (`auth_method`, then AUTH packets, which can also re-authenticate
mid-session) bypasses the username/password check: refuse such a CONNECT with
`connack_bad_authentication_method()` unless the broker's AUTH exchange is trusted.

Supported: MQTT 3.1 (name "MQIsdp", level 3), 3.1.1 ("MQTT", 4) and 5 ("MQTT", 5, with
properties). Everything the broker could read differently from us is refused rather
than guessed at, so that the username and password checked here are the ones the broker
sees: non-minimal variable byte integers, bytes left over after the last field, unknown
or repeated v5 properties, U+0000 or invalid UTF-8 in strings. Topic names and client
identifier rules are the broker's business and are not checked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, NamedTuple

__all__ = [
    "MAX_CONNECT_SIZE",
    "ConnectPacket",
    "ConnectReader",
    "DisconnectReason",
    "MqttConnectError",
    "connack_bad_authentication_method",
    "connack_bad_credentials",
    "connack_bad_packet",
    "connack_for_error",
    "connack_not_authorized",
    "disconnect",
    "disconnect_for_revocation",
    "parse_connect",
]

MAX_CONNECT_SIZE: Final = 64 * 1024

_CONNECT: Final = 0x10  # type 1, flags 0 (3.1.1 2.2.2: the flags of CONNECT are reserved)
_CONNACK: Final = 0x20
_DISCONNECT: Final = 0xE0
_LEVELS: Final = (3, 4, 5)
_LARGEST_PACKET: Final = 1 + 4 + 268_435_455  # the largest remaining length, 4 bytes
_PACKET_NAMES: Final = (
    "reserved type 0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
    "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
    "DISCONNECT", "AUTH",
)


class MqttConnectError(ValueError):
    """The client's first packet is not an acceptable CONNECT; `reason` says why."""

    def __init__(
        self,
        reason: str,
        *,
        protocol_level: int | None = None,
        unsupported_version: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.protocol_level = protocol_level
        self.unsupported_version = unsupported_version


@dataclass(frozen=True, slots=True)
class ConnectPacket:
    """What the gateway needs from a CONNECT, and the packet itself (`raw`) to forward.

    `clean_start` is "Clean Session" before MQTT 5. `auth_method` is MQTT 5's
    Authentication Method property (enhanced authentication, an AUTH exchange the
    gateway cannot take part in), None when absent and always None before MQTT 5.
    """

    protocol_level: int
    client_id: str
    username: str | None
    password: bytes | None = field(repr=False)  # an access token: never in logs
    keep_alive: int
    clean_start: bool
    raw: bytes = field(repr=False)
    auth_method: str | None = None


class ConnectReader:
    """Accumulates a client's bytes until its first packet, a CONNECT, is complete."""

    __slots__ = ("_buffer", "_error", "_max_size", "_packet", "_total", "_trailing")

    def __init__(self, max_size: int = MAX_CONNECT_SIZE) -> None:
        if max_size < 2:
            raise ValueError("max_size must be at least 2 bytes")
        self._max_size = max_size
        self._buffer = bytearray()
        self._total: int | None = None  # the whole packet's size, once the header is read
        self._packet: ConnectPacket | None = None
        self._trailing = b""
        self._error: MqttConnectError | None = None

    @property
    def max_size(self) -> int:
        return self._max_size

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of the CONNECT."""
        return len(self._buffer)

    @property
    def trailing(self) -> bytes:
        """What arrived after the CONNECT (more packets), once `feed` has returned it."""
        return self._trailing

    def feed(self, data: bytes | bytearray | memoryview) -> ConnectPacket | None:
        """Add bytes; the CONNECT once complete, None while more are needed.

        Raises MqttConnectError as soon as the bytes cannot start a valid CONNECT.
        """
        if self._error is not None:
            raise self._error
        if self._packet is not None:
            raise RuntimeError("the CONNECT was already read; forward later bytes as they are")
        try:
            return self._feed(data)
        except MqttConnectError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _feed(self, data: bytes | bytearray | memoryview) -> ConnectPacket | None:
        self._buffer += data
        if self._total is None:
            header = _fixed_header(self._buffer, self._max_size)
            if header is None:
                return None
            self._total = header[1]
        if len(self._buffer) < self._total:
            return None
        raw = bytes(self._buffer[: self._total])
        packet = parse_connect(raw)
        self._trailing = bytes(self._buffer[self._total :])
        self._buffer.clear()
        self._packet = packet
        return packet


def parse_connect(raw: bytes) -> ConnectPacket:
    """Parse exactly one complete CONNECT packet (fixed header included)."""
    header = _fixed_header(raw, _LARGEST_PACKET)
    if header is None:
        raise MqttConnectError("fixed header: truncated")
    start, total = header
    if total != len(raw):
        raise MqttConnectError(
            f"remaining length says {total} bytes in all, the packet has {len(raw)}"
        )
    body = _Cursor(raw, start, total, "packet")
    level: int | None = None
    try:
        level = _protocol(body)
        return _connect_body(body, level, raw)
    except MqttConnectError as exc:
        if exc.protocol_level is None and level is not None:
            exc.protocol_level = level
        raise


# --- answers -----------------------------------------------------------------------------


class DisconnectReason(enum.IntEnum):
    """MQTT 5 DISCONNECT reason codes a server may send (MQTT 5, 3.14.2.1)."""

    NOT_AUTHORIZED = 0x87
    SERVER_SHUTTING_DOWN = 0x8B
    ADMINISTRATIVE_ACTION = 0x98
    MAXIMUM_CONNECT_TIME = 0xA0


def connack_not_authorized(protocol_level: int) -> bytes:
    """CONNACK "not authorized": return code 5 (3.1, 3.1.1), reason code 0x87 (5)."""
    return _connack(protocol_level, legacy=0x05, v5=0x87)


def connack_bad_credentials(protocol_level: int) -> bytes:
    """CONNACK "bad user name or password": return code 4 (3.1, 3.1.1), 0x86 (5)."""
    return _connack(protocol_level, legacy=0x04, v5=0x86)


def connack_bad_packet(protocol_level: int) -> bytes | None:
    """MQTT 5: CONNACK 0x81 (Malformed Packet). Before 5 there is no such code: None."""
    _check_level(protocol_level)
    return _connack(5, legacy=0, v5=0x81) if protocol_level == 5 else None


def connack_bad_authentication_method() -> bytes:
    """MQTT 5 CONNACK 0x8C (Bad authentication method), for a CONNECT with `auth_method`."""
    return _connack(5, legacy=0, v5=0x8C)


def connack_for_error(error: MqttConnectError) -> bytes | None:
    """The CONNACK to send before closing on `error`, or None to just close.

    An unsupported level gets return code 1 in the 3.1.1 format, the answer 3.1.1
    mandates (3.1.2-2) and the only one a client of an unknown level may understand.
    """
    if error.unsupported_version:
        return bytes((_CONNACK, 0x02, 0x00, 0x01))
    if error.protocol_level is None:
        return None
    return connack_bad_packet(error.protocol_level)


def disconnect(protocol_level: int, reason: DisconnectReason) -> bytes | None:
    """MQTT 5: a server DISCONNECT with `reason` and no properties. Before 5: None."""
    _check_level(protocol_level)
    if protocol_level != 5:
        return None  # 3.1.1 has no server-sent DISCONNECT: closing the connection is it
    return bytes((_DISCONNECT, 0x02, int(reason), 0x00))


def disconnect_for_revocation(protocol_level: int) -> bytes | None:
    """MQTT 5: DISCONNECT 0x87 (Not authorized) for a credential revoked mid-session."""
    return disconnect(protocol_level, DisconnectReason.NOT_AUTHORIZED)


def _connack(protocol_level: int, *, legacy: int, v5: int) -> bytes:
    _check_level(protocol_level)
    if protocol_level == 5:
        # Session Present 0 (required with a failure code), reason, empty properties.
        return bytes((_CONNACK, 0x03, 0x00, v5, 0x00))
    return bytes((_CONNACK, 0x02, 0x00, legacy))


def _check_level(protocol_level: int) -> None:
    if protocol_level not in _LEVELS:
        raise ValueError(f"not a supported MQTT protocol level: {protocol_level!r}")


# --- parsing -----------------------------------------------------------------------------


def _fixed_header(buffer: bytes | bytearray, max_size: int) -> tuple[int, int] | None:
    """(header size, whole packet size) of a CONNECT; None while the header is incomplete."""
    if not buffer:
        return None
    first = buffer[0]
    if first != _CONNECT:
        kind = first >> 4
        if kind == 1:
            raise MqttConnectError(f"CONNECT with reserved flags 0x{first & 0x0F:x} set")
        raise MqttConnectError(f"first packet is {_PACKET_NAMES[kind]}, not CONNECT")
    decoded = _varint(buffer, 1, len(buffer), "remaining length")
    if decoded is None:
        # A minimal encoding with n continuation bytes is worth at least 128**n: refuse
        # an oversized packet before its header is even complete.
        continued = len(buffer) - 1
        at_least = 1 + continued + 1 + 128**continued
        if at_least > max_size:
            raise _too_large(at_least, max_size, exact=False)
        return None
    remaining, end = decoded
    total = end + remaining
    if total > max_size:
        raise _too_large(total, max_size, exact=True)
    return end, total


def _too_large(size: int, max_size: int, *, exact: bool) -> MqttConnectError:
    amount = f"{size}" if exact else f"at least {size}"
    return MqttConnectError(f"CONNECT of {amount} bytes is over the {max_size}-byte limit")


def _varint(
    data: bytes | bytearray, start: int, end: int, what: str
) -> tuple[int, int] | None:
    """A Variable Byte Integer at `start`: (value, end), None if cut off before `end`."""
    value = 0
    for index in range(4):
        position = start + index
        if position >= end:
            return None
        byte = data[position]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                # MQTT 5 1.5.5-1; 3.1.1 clients never do otherwise, and a value with two
                # spellings is one a broker could read differently.
                raise MqttConnectError(f"{what}: not minimally encoded")
            return value, position + 1
    raise MqttConnectError(f"{what}: more than 4 bytes")


class _Cursor:
    """Reads MQTT data types from data[pos:end]; never past `end`."""

    __slots__ = ("_data", "_end", "_pos", "_scope")

    def __init__(self, data: bytes, pos: int, end: int, scope: str) -> None:
        self._data = data
        self._pos = pos
        self._end = end
        self._scope = scope

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def take(self, count: int, what: str) -> bytes:
        if count > self.remaining:
            raise MqttConnectError(f"{what}: truncated")
        start = self._pos
        self._pos += count
        return self._data[start : self._pos]

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "big")

    def varint(self, what: str) -> int:
        decoded = _varint(self._data, self._pos, self._end, what)
        if decoded is None:
            raise MqttConnectError(f"{what}: truncated")
        value, self._pos = decoded
        return value

    def binary(self, what: str) -> bytes:
        length = self.u16(what)
        if length > self.remaining:
            raise MqttConnectError(
                f"{what}: length {length} points past the end of the {self._scope}"
            )
        return self.take(length, what)

    def string(self, what: str) -> str:
        encoded = self.binary(what)
        try:
            text = encoded.decode("utf-8")  # strict: no surrogates, no overlong forms
        except UnicodeDecodeError:
            raise MqttConnectError(f"{what}: invalid UTF-8") from None
        if "\x00" in text:
            raise MqttConnectError(f"{what}: contains U+0000")  # MQTT 1.5.3-2
        return text

    def section(self, length: int, what: str, scope: str) -> _Cursor:
        """The next `length` bytes as a cursor of their own; this one skips them."""
        if length > self.remaining:
            raise MqttConnectError(
                f"{what}: length {length} points past the end of the {self._scope}"
            )
        inner = _Cursor(self._data, self._pos, self._pos + length, scope)
        self._pos += length
        return inner


def _protocol(body: _Cursor) -> int:
    """Protocol name and level; the level if the two go together and we speak it."""
    name = body.binary("protocol name")
    level = body.byte("protocol level")
    if name == b"MQTT":
        if level in (4, 5):
            return level
        if level == 3:
            raise MqttConnectError("protocol name MQTT with level 3 (3.1 is named MQIsdp)")
        raise MqttConnectError(
            f"unsupported protocol level {level} for MQTT", unsupported_version=True
        )
    if name == b"MQIsdp":
        if level == 3:
            return level
        raise MqttConnectError(f"protocol name MQIsdp with level {level} (it is level 3)")
    raise MqttConnectError(f"unknown protocol name {name[:16]!r}")


def _connect_body(body: _Cursor, level: int, raw: bytes) -> ConnectPacket:
    flags = body.byte("connect flags")
    has_username = bool(flags & 0x80)
    has_password = bool(flags & 0x40)
    will_retain = bool(flags & 0x20)
    will_qos = (flags >> 3) & 0x03
    has_will = bool(flags & 0x04)
    if flags & 0x01:
        raise MqttConnectError("reserved connect flag (bit 0) is set")
    if has_will and will_qos == 3:
        raise MqttConnectError("will QoS 3")
    if not has_will and (will_qos or will_retain):
        raise MqttConnectError("will QoS or will retain set without the will flag")
    if has_password and not has_username and level < 5:
        raise MqttConnectError("password flag without username flag (allowed only in MQTT 5)")
    keep_alive = body.u16("keep alive")
    auth_method: str | None = None
    if level == 5:
        properties = _properties(body, _CONNECT_PROPERTIES, "CONNECT properties")
        method = properties.get(_AUTHENTICATION_METHOD)
        auth_method = method if isinstance(method, str) else None

    client_id = body.string("client identifier")
    if has_will:
        if level == 5:
            _properties(body, _WILL_PROPERTIES, "will properties")
        body.string("will topic")
        body.binary("will payload")
    username = body.string("username") if has_username else None
    password = body.binary("password") if has_password else None
    if body.remaining:
        # A broker would not read these bytes the way we do (or at all): refuse them.
        raise MqttConnectError(f"{body.remaining} bytes after the last CONNECT field")
    return ConnectPacket(
        protocol_level=level,
        client_id=client_id,
        username=username,
        password=password,
        keep_alive=keep_alive,
        clean_start=bool(flags & 0x02),
        raw=raw,
        auth_method=auth_method,
    )


# --- MQTT 5 properties -----------------------------------------------------------------


class _Kind(enum.Enum):
    BYTE = enum.auto()
    U16 = enum.auto()
    U32 = enum.auto()
    STRING = enum.auto()
    BINARY = enum.auto()
    PAIR = enum.auto()


class _Property(NamedTuple):
    name: str
    kind: _Kind
    rule: str | None = None  # "bool": 0 or 1; "nonzero": 0 is a protocol error


_Value = int | str | bytes | tuple[str, str]

_USER_PROPERTY: Final = 0x26
_AUTHENTICATION_METHOD: Final = 0x15
_AUTHENTICATION_DATA: Final = 0x16

# MQTT 5 3.1.2.11 and 3.1.3.2: the only properties a CONNECT and its will may carry.
_CONNECT_PROPERTIES: Final = {
    0x11: _Property("Session Expiry Interval", _Kind.U32),
    0x21: _Property("Receive Maximum", _Kind.U16, "nonzero"),
    0x27: _Property("Maximum Packet Size", _Kind.U32, "nonzero"),
    0x22: _Property("Topic Alias Maximum", _Kind.U16),
    0x19: _Property("Request Response Information", _Kind.BYTE, "bool"),
    0x17: _Property("Request Problem Information", _Kind.BYTE, "bool"),
    _USER_PROPERTY: _Property("User Property", _Kind.PAIR),
    _AUTHENTICATION_METHOD: _Property("Authentication Method", _Kind.STRING),
    _AUTHENTICATION_DATA: _Property("Authentication Data", _Kind.BINARY),
}
_WILL_PROPERTIES: Final = {
    0x18: _Property("Will Delay Interval", _Kind.U32),
    0x01: _Property("Payload Format Indicator", _Kind.BYTE, "bool"),
    0x02: _Property("Message Expiry Interval", _Kind.U32),
    0x03: _Property("Content Type", _Kind.STRING),
    0x08: _Property("Response Topic", _Kind.STRING),
    0x09: _Property("Correlation Data", _Kind.BINARY),
    _USER_PROPERTY: _Property("User Property", _Kind.PAIR),
}


def _properties(body: _Cursor, allowed: dict[int, _Property], what: str) -> dict[int, _Value]:
    """Read a property list: identifier -> value (User Property, which may repeat,
    keeps its last value; it is the only one allowed to repeat)."""
    length = body.varint(f"{what} length")
    section = body.section(length, what, "properties")
    seen: dict[int, _Value] = {}
    while section.remaining:
        identifier = section.byte(f"{what}: property identifier")
        spec = allowed.get(identifier)
        if spec is None:
            raise MqttConnectError(f"{what}: property 0x{identifier:02x} is not allowed here")
        label = f"{what}: {spec.name}"
        value = _property_value(section, spec.kind, label)
        if identifier != _USER_PROPERTY and identifier in seen:
            raise MqttConnectError(f"{label} appears twice")
        if spec.rule == "bool" and value not in (0, 1):
            raise MqttConnectError(f"{label} must be 0 or 1, not {value!r}")
        if spec.rule == "nonzero" and value == 0:
            raise MqttConnectError(f"{label} must not be 0")
        seen[identifier] = value
    if _AUTHENTICATION_DATA in seen and _AUTHENTICATION_METHOD not in seen:
        raise MqttConnectError(f"{what}: Authentication Data without Authentication Method")
    return seen


def _property_value(section: _Cursor, kind: _Kind, label: str) -> _Value:
    if kind is _Kind.BYTE:
        return section.byte(label)
    if kind is _Kind.U16:
        return section.u16(label)
    if kind is _Kind.U32:
        return section.u32(label)
    if kind is _Kind.STRING:
        return section.string(label)
    if kind is _Kind.BINARY:
        return section.binary(label)
    return section.string(f"{label} name"), section.string(f"{label} value")
