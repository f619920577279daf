"""Remote control from the receivers (DACP, docs/ARCHITECTURE.md §2): `server` is the aiohttp
DACP server, `control` the provider's glue (tokens, players, volume echo). The wire rules are
sans-I/O in `protocol/dacp.py`. Nothing is imported here, so the provider loads aiohttp only
when it starts the server."""
