"""AirPlay mDNS records → device records: TXT keys, feature bits, status flags, model, protocol.

Pure functions only. `parse_service` turns one resolved `_raop._tcp` or `_airplay._tcp` service
into a `ServiceRecord`; `merge_records` combines a device's two records into a `DeviceRecord`;
`choose_protocol` picks RAOP or AirPlay 2 for it.

Addresses are ranked by `protocol.addresses` and models named by `protocol.models`; both are
re-exported here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum, IntFlag

from airplay_provider.protocol.addresses import choose_address, rank_addresses
from airplay_provider.protocol.errors import AirplayError
from airplay_provider.protocol.models import (
    BROKEN_MODELS,
    is_apple,
    is_broken_model,
    is_shairport_sync,
    model_info,
)

__all__ = [  # defined in addresses.py and models.py; callers import them from here too
    "BROKEN_MODELS",
    "choose_address",
    "is_apple",
    "is_broken_model",
    "is_shairport_sync",
    "model_info",
    "rank_addresses",
]

RAOP_SERVICE_TYPE = "_raop._tcp.local."
AIRPLAY_SERVICE_TYPE = "_airplay._tcp.local."
SERVICE_TYPES = (AIRPLAY_SERVICE_TYPE, RAOP_SERVICE_TYPE)

_MAC_HEX = re.compile(r"^[0-9a-fA-F]{12}$")


class TxtError(AirplayError, ValueError):
    """A service record that cannot describe an AirPlay device (no identity, bad type)."""


class ServiceKind(Enum):
    """Which of the two AirPlay mDNS services a record came from."""

    RAOP = "raop"
    AIRPLAY = "airplay"


class StreamingProtocol(IntEnum):
    """The wire protocol used to stream to a receiver (values as Music Assistant's)."""

    RAOP = 1
    AIRPLAY2 = 2


class ProtocolPreference(IntEnum):
    """The user's choice in the `airplay_protocol` setting."""

    AUTO = 0
    RAOP = 1
    AIRPLAY2 = 2


class Feature(IntEnum):
    """Bit numbers of the 64-bit `features` value that matter to a sender."""

    AIRPLAY_AUDIO = 9
    AUTH_MFI = 26
    LEGACY_PAIRING = 27
    UNIFIED_MEDIA_CONTROL = 38
    BUFFERED_AUDIO = 40
    PTP = 41
    SYSTEM_PAIRING = 43
    HK_PAIRING_AND_ACCESS_CONTROL = 46
    COREUTILS_PAIRING_AND_ENCRYPTION = 48
    SET_PEERS_EXTENDED = 52


class StatusFlag(IntFlag):
    """Status flags (`flags` in `_airplay`, `sf` in `_raop`)."""

    PROBLEM_DETECTED = 0x1
    NOT_CONFIGURED = 0x2
    AUDIO_CABLE_ATTACHED = 0x4
    PIN_REQUIRED = 0x8
    SUPPORTS_AIRPLAY_FROM_CLOUD = 0x40
    PASSWORD_REQUIRED = 0x80
    ONE_TIME_PAIRING_REQUIRED = 0x200
    HOMEKIT_ACCESS_CONTROL = 0x400
    SUPPORTS_RELAY = 0x800
    SILENT_PRIMARY = 0x1000
    TIGHT_SYNC_GROUP_LEADER = 0x2000
    TIGHT_SYNC_BUDDY_NOT_REACHABLE = 0x4000
    APPLE_MUSIC_SUBSCRIBER = 0x8000
    CLOUD_LIBRARY_ON = 0x10000
    RECEIVER_SESSION_ACTIVE = 0x20000


PAIRING_FLAGS = StatusFlag.PIN_REQUIRED | StatusFlag.ONE_TIME_PAIRING_REQUIRED


TxtProperties = Mapping[bytes, bytes | None] | Mapping[str, str | None]


def decode_txt(properties: TxtProperties) -> dict[str, str]:
    """Decode zeroconf TXT properties: keys lower-cased (they are case-insensitive), text values.

    A key without a value maps to ``""``. Undecodable bytes become U+FFFD, never an exception.
    """
    decoded: dict[str, str] = {}
    for raw_key, raw_value in properties.items():
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
        if isinstance(raw_value, bytes):
            value = raw_value.decode("utf-8", "replace")
        else:
            value = raw_value or ""
        decoded.setdefault(key.strip().lower(), value.strip())
    return decoded


def parse_features(text: str) -> int:
    """Parse ``0xLOW,0xHIGH`` (or a single ``0xLOW``) into the 64-bit feature value."""
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= 2:
        raise TxtError(f"features must be '0xLOW' or '0xLOW,0xHIGH', got {text!r}")
    words = [_parse_hex_word(part, text) for part in parts]
    low = words[0]
    high = words[1] if len(words) == 2 else 0
    return (high << 32) | low


def _parse_hex_word(part: str, whole: str) -> int:
    try:
        value = int(part, 16)
    except ValueError:
        raise TxtError(f"features word {part!r} in {whole!r} is not hexadecimal") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise TxtError(f"features word {part!r} in {whole!r} does not fit 32 bits")
    return value


def parse_flags(text: str) -> int:
    """Parse a hexadecimal status-flags value such as ``0x44`` or ``0x1a404``."""
    try:
        value = int(text.strip(), 16)
    except ValueError:
        raise TxtError(f"status flags {text!r} are not hexadecimal") from None
    if value < 0:
        raise TxtError(f"status flags {text!r} are negative")
    return value


def has_feature(features: int, bit: Feature | int) -> bool:
    """True when feature bit `bit` is set."""
    return bool(features >> int(bit) & 1)


def supports_airplay2(features: int) -> bool:
    """AirPlay 2 capable: feature bit 38 or 48 set."""
    return has_feature(features, Feature.UNIFIED_MEDIA_CONTROL) or has_feature(
        features, Feature.COREUTILS_PAIRING_AND_ENCRYPTION
    )


def normalize_mac(text: str) -> str:
    """``AA:BB:CC:DD:EE:FF`` / ``aabbccddeeff`` → ``aabbccddeeff``; anything else → TxtError."""
    compact = text.strip().replace(":", "").replace("-", "")
    if not _MAC_HEX.fullmatch(compact):
        raise TxtError(f"{text!r} is not a MAC address")
    return compact.lower()


def player_id_from_mac(mac: str) -> str:
    """Player id: ``ap`` + the 12 lower-case hex digits of the MAC."""
    return "ap" + normalize_mac(mac)


def mac_from_player_id(player_id: str) -> str:
    """``ap1a2b3c4d5e6f`` → ``1A:2B:3C:4D:5E:6F``."""
    if not player_id.startswith("ap"):
        raise TxtError(f"{player_id!r} is not an AirPlay player id")
    mac = normalize_mac(player_id[2:]).upper()
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))


def active_remote_from_mac(mac: str) -> int:
    """Active-Remote id: the low 32 bits of the MAC, as an integer (sent in decimal)."""
    return int(normalize_mac(mac), 16) & 0xFFFFFFFF


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRecord:
    """One resolved `_raop._tcp` or `_airplay._tcp` service, decoded."""

    kind: ServiceKind
    service_name: str
    display_name: str
    mac: str
    port: int
    addresses: tuple[str, ...]
    txt: Mapping[str, str]
    hostname: str | None = None
    problems: tuple[str, ...] = ()


def service_kind(service_type: str) -> ServiceKind:
    """``_raop._tcp.local.`` → RAOP, ``_airplay._tcp.local.`` → AIRPLAY."""
    normalized = service_type.lower().rstrip(".")
    if normalized in ("_raop._tcp.local", "_raop._tcp"):
        return ServiceKind.RAOP
    if normalized in ("_airplay._tcp.local", "_airplay._tcp"):
        return ServiceKind.AIRPLAY
    raise TxtError(f"{service_type!r} is not an AirPlay service type")


def instance_part(service_name: str, service_type: str) -> str:
    """Strip the ``._raop._tcp.local.`` suffix from a full service name."""
    suffix = "." + service_type.rstrip(".")
    name = service_name.rstrip(".")
    if name.lower().endswith(suffix.lower()):
        return name[: -len(suffix)]
    return name


def parse_service(
    service_type: str,
    service_name: str,
    *,
    port: int | None,
    addresses: Sequence[str],
    properties: TxtProperties,
    hostname: str | None = None,
) -> ServiceRecord:
    """Decode one resolved service. Raises TxtError when it carries no device identity."""
    kind = service_kind(service_type)
    txt = decode_txt(properties)
    instance = instance_part(service_name, service_type)
    if port is None or not 0 < port < 65536:
        raise TxtError(f"{service_name!r} has no usable port ({port!r})")
    if kind is ServiceKind.RAOP:
        mac_part, at, display = instance.partition("@")
        if not at:
            raise TxtError(f"RAOP name {instance!r} lacks the '<MAC>@' prefix")
        mac = normalize_mac(mac_part)
    else:
        if "deviceid" not in txt:
            raise TxtError(f"AirPlay service {instance!r} has no deviceid in its TXT record")
        mac = normalize_mac(txt["deviceid"])
        display = instance
    problems = tuple(_check_optional_fields(txt))
    return ServiceRecord(
        kind=kind,
        service_name=service_name,
        display_name=display.strip() or mac,
        mac=mac,
        port=port,
        addresses=tuple(addresses),
        txt=txt,
        hostname=hostname,
        problems=problems,
    )


def _check_optional_fields(txt: Mapping[str, str]) -> Iterable[str]:
    for key in ("features", "ft"):
        if key in txt:
            try:
                parse_features(txt[key])
            except TxtError as err:
                yield str(err)
    for key in ("flags", "sf"):
        if key in txt:
            try:
                parse_flags(txt[key])
            except TxtError as err:
                yield str(err)


@dataclass(frozen=True)
class DeviceRecord:
    """Everything known about one receiver, merged from its `_raop` and `_airplay` records."""

    player_id: str
    mac: str
    name: str
    manufacturer: str
    model: str
    model_id: str | None
    features: int
    status_flags: int
    address: str | None
    addresses: tuple[str, ...]
    raop: ServiceRecord | None = None
    airplay: ServiceRecord | None = None
    problems: tuple[str, ...] = field(default=())
    #: The other usable addresses, best first: tried when `address` does not answer.
    fallback_addresses: tuple[str, ...] = field(default=())

    @property
    def raop_port(self) -> int | None:
        """Port of the `_raop._tcp` service (RTSP for RAOP), if announced."""
        return self.raop.port if self.raop else None

    @property
    def airplay_port(self) -> int | None:
        """Port of the `_airplay._tcp` service (AirPlay 2), if announced."""
        return self.airplay.port if self.airplay else None

    @property
    def hostname(self) -> str | None:
        """mDNS host name (SRV target), AirPlay record preferred."""
        for record in (self.airplay, self.raop):
            if record and record.hostname:
                return record.hostname
        return None

    @property
    def supports_airplay2(self) -> bool:
        """Feature bit 38 or 48 set and an `_airplay` service to talk to."""
        return self.airplay is not None and supports_airplay2(self.features)

    @property
    def pairing_required(self) -> bool:
        """Status flag 0x8 (PIN) or 0x200 (one-time pairing) set."""
        return bool(self.status_flags & PAIRING_FLAGS)

    @property
    def password_required(self) -> bool:
        """Status flag 0x80, or TXT ``pw=true``."""
        if self.status_flags & StatusFlag.PASSWORD_REQUIRED:
            return True
        return any(
            record is not None and record.txt.get("pw", "").lower() in ("true", "1")
            for record in (self.raop, self.airplay)
        )

    @property
    def active_remote(self) -> int:
        """Active-Remote id derived from the MAC."""
        return active_remote_from_mac(self.mac)

    @property
    def is_apple(self) -> bool:
        """Manufacturer starts with "Apple"."""
        return is_apple(self.manufacturer)

    @property
    def is_broken(self) -> bool:
        """Known not to play (see `BROKEN_MODELS`)."""
        return is_broken_model(self.manufacturer, self.model)


def merge_records(
    raop: ServiceRecord | None,
    airplay: ServiceRecord | None,
    local_networks: Sequence[str] = (),
) -> DeviceRecord:
    """Combine a device's `_raop` and `_airplay` records (either may be missing, not both).

    `local_networks`: of the interfaces the records were seen on (`rank_addresses`)."""
    records = [record for record in (airplay, raop) if record is not None]
    if not records:
        raise TxtError("a device needs at least one service record")
    macs = {record.mac for record in records}
    if len(macs) != 1:
        raise TxtError(f"records of different devices cannot merge: {sorted(macs)}")
    mac = macs.pop()
    features = _first_parsed(records, ("features", "ft"), parse_features)
    flags = _first_parsed(records, ("flags", "sf"), parse_flags)
    txt_manufacturer = airplay.txt.get("manufacturer") if airplay else None
    model_id = _first_text(records, ("model", "am"))
    manufacturer, model = model_info(txt_manufacturer, model_id)
    addresses = tuple(dict.fromkeys(a for record in records for a in record.addresses))
    ranked = rank_addresses(addresses, local_networks)
    problems = tuple(dict.fromkeys(p for record in records for p in record.problems))
    return DeviceRecord(
        player_id=player_id_from_mac(mac),
        mac=mac,
        name=records[0].display_name,
        manufacturer=manufacturer,
        model=model,
        model_id=model_id,
        features=features,
        status_flags=flags,
        address=ranked[0] if ranked else None,
        addresses=addresses,
        fallback_addresses=ranked[1:],
        raop=raop,
        airplay=airplay,
        problems=problems,
    )


def _first_text(records: Sequence[ServiceRecord], keys: Sequence[str]) -> str | None:
    for record in records:
        for key in keys:
            if record.txt.get(key):
                return record.txt[key]
    return None


def _first_parsed(
    records: Sequence[ServiceRecord], keys: Sequence[str], parse: Callable[[str], int]
) -> int:
    """First value that parses; bad values were already reported in `problems`."""
    for record in records:
        for key in keys:
            if key in record.txt:
                try:
                    return parse(record.txt[key])
                except TxtError:
                    continue
    return 0


class ProtocolUnavailableError(AirplayError):
    """No streaming route to this device with the streamers available here."""


def choose_protocol(
    device: DeviceRecord,
    preference: ProtocolPreference = ProtocolPreference.AUTO,
    *,
    ap2_available: bool = True,
) -> StreamingProtocol:
    """Pick the streaming protocol.

    AirPlay 2 when the user asked for it or (on AUTO) feature bit 38/48 is set, provided the
    device has an `_airplay` service; RAOP otherwise. A forced choice that is impossible falls
    back to the other protocol when that one works. `ap2_available=False` (a host without
    `cliap2`; ours always has it) leaves AirPlay 2 out.
    """
    can_raop = device.raop is not None
    can_ap2 = ap2_available and device.airplay is not None
    if preference is ProtocolPreference.RAOP:
        wanted = [StreamingProtocol.RAOP, StreamingProtocol.AIRPLAY2]
    elif preference is ProtocolPreference.AIRPLAY2 or device.supports_airplay2:
        wanted = [StreamingProtocol.AIRPLAY2, StreamingProtocol.RAOP]
    else:
        wanted = [StreamingProtocol.RAOP, StreamingProtocol.AIRPLAY2]
    for protocol in wanted:
        if protocol is StreamingProtocol.RAOP and can_raop:
            return protocol
        if protocol is StreamingProtocol.AIRPLAY2 and can_ap2:
            return protocol
    reason = "no AirPlay 2 streamer here" if device.airplay else "no _raop service"
    raise ProtocolUnavailableError(
        f"{device.name}: no usable protocol (RAOP service: {can_raop}; AirPlay 2: {reason})"
    )


def is_own_receiver(
    device: DeviceRecord, own_ports: Iterable[int], own_addresses: Iterable[str] = ()
) -> bool:
    """A shairport-sync run by this host for the server itself (to be ignored).

    True when the model is shairport-sync, its address is loopback or one of `own_addresses`,
    and one of its service ports is in `own_ports`.
    """
    if not is_shairport_sync(device.model_id) or device.address is None:
        return False
    local = device.address in set(own_addresses)
    try:
        local = local or ipaddress.ip_address(device.address).is_loopback
    except ValueError:
        return False
    ports = {port for port in (device.raop_port, device.airplay_port) if port is not None}
    return local and bool(ports & set(own_ports))
