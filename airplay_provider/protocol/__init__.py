"""Sans-I/O protocol code: encoders, decoders and state machines, no sockets, no asyncio."""
