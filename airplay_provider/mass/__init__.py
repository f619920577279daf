"""Music Assistant adapter: our provider and players as Music Assistant's own classes.

Imported only inside Music Assistant's server (these modules import `music_assistant`); the
standalone host and the tests on Python 3.11 never load it. `airplay_provider.setup()` hands
Music Assistant's server object to `provider.MassAirPlayProvider`; the protocol, session and
streamer code underneath stays unaware of Music Assistant (it talks to `host.MassHost`, a
`ProviderHost`).
"""
