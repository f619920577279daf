"""Sans-I/O HomeKit (HAP) pairing: TLV8, SRP, pair-setup/verify, credentials, channel cipher.

Import from the submodules (`hap.channel`, `hap.pair_setup`, ...): this package re-exports
nothing, so a streamer that needs only the channel cipher does not pay for SRP at start-up.
"""
