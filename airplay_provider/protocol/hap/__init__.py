"""Sans-I/O HomeKit (HAP) pairing: TLV8, SRP, pair-setup/verify, credentials, channel cipher."""

from .channel import ChannelCipher, ChannelKeys, control_keys, event_keys
from .credentials import HapCredentials, LegacyCredentials
from .errors import (
    AccessoryError,
    AuthenticationError,
    BackoffError,
    BusyError,
    ChannelError,
    HapError,
    HttpStatusError,
    InvalidCredentials,
    MaxPeersError,
    MaxTriesError,
    PairingError,
    ProtocolViolation,
    TlvError,
    UnavailableError,
    UnknownAccessoryError,
)
from .flow import PairingFlow
from .legacy import LegacyPairSetup, LegacyPairVerify, LegacyVerifyResult
from .pair_setup import PairSetup, PairSetupResult
from .pair_verify import PairVerify, PairVerifyResult

__all__ = [
    "AccessoryError",
    "AuthenticationError",
    "BackoffError",
    "BusyError",
    "ChannelCipher",
    "ChannelError",
    "ChannelKeys",
    "HapCredentials",
    "HapError",
    "HttpStatusError",
    "InvalidCredentials",
    "LegacyCredentials",
    "LegacyPairSetup",
    "LegacyPairVerify",
    "LegacyVerifyResult",
    "MaxPeersError",
    "MaxTriesError",
    "PairSetup",
    "PairSetupResult",
    "PairVerify",
    "PairVerifyResult",
    "PairingError",
    "PairingFlow",
    "ProtocolViolation",
    "TlvError",
    "UnavailableError",
    "UnknownAccessoryError",
    "control_keys",
    "event_keys",
]
