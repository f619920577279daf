"""Pairing with AirPlay devices: `client` drives the HAP flows of `protocol/hap/` over one RTSP
connection (used by the streamers and the provider alike); `manager` is the provider side (one
attempt per player, user-facing errors, credentials stored through the host; `config_entries`
the pairing entries of its settings). Nothing is imported here: a streamer importing
`pairing.client` must not load the provider side."""
