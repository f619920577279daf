"""The DACP server over real loopback HTTP: routing, filters, limits, fuzzing, mDNS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from airplay_provider.protocol.dacp import (
    ActionKind,
    DacpAction,
    DacpPlayerState,
    DacpPolicy,
    encode_volume_property,
)
from airplay_provider.remote.server import DACP_SERVICE_TYPE, DacpServer, dacp_service_name

HOST = "127.0.0.1"
DACP_ID = "00112233AABBCCDD"
TOKENS = {"1001": "p1", "2002": "p2"}
DEBOUNCE_S = 0.05
WAIT_S = 5.0


@dataclass
class FakeTarget:
    """Two players; records every action handed over by the server."""

    states: dict[str, DacpPlayerState] = field(
        default_factory=lambda: {
            pid: DacpPlayerState(pid, playing=True, volume=50) for pid in TOKENS.values()
        }
    )
    actions: list[tuple[str, DacpAction]] = field(default_factory=list)
    queue: asyncio.Queue[tuple[str, DacpAction]] = field(default_factory=asyncio.Queue)
    gate: asyncio.Event | None = None

    def find_player_by_active_remote(self, active_remote: str) -> DacpPlayerState | None:
        player_id = TOKENS.get(active_remote)
        return None if player_id is None else self.states[player_id]

    async def handle_dacp_action(self, player_id: str, action: DacpAction) -> None:
        self.actions.append((player_id, action))
        self.queue.put_nowait((player_id, action))
        if self.gate is not None:
            await self.gate.wait()

    async def next_action(self) -> tuple[str, DacpAction]:
        async with asyncio.timeout(WAIT_S):
            return await self.queue.get()


@pytest.fixture
def target() -> FakeTarget:
    return FakeTarget()


@pytest.fixture
async def server(target: FakeTarget) -> AsyncIterator[DacpServer]:
    async with DacpServer(
        target,
        DACP_ID,
        hosts=[HOST],
        policy_factory=lambda: DacpPolicy(debounce_s=DEBOUNCE_S),
    ) as dacp:
        yield dacp


@pytest.fixture
async def impatient_server(target: FakeTarget) -> AsyncIterator[DacpServer]:
    """Closes connections after 0.2 s, so incomplete fuzz requests end quickly."""
    async with DacpServer(target, DACP_ID, hosts=[HOST], max_connection_age_s=0.2) as dacp:
        yield dacp


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


async def get(
    http: aiohttp.ClientSession, server: DacpServer, path: str, token: str | None
) -> tuple[int, dict[str, str], bytes]:
    headers = {} if token is None else {"Active-Remote": token}
    url = f"http://{HOST}:{server.port}{path}"
    async with http.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.read()


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes and read everything until the server closes the connection.

    (No half-close: asyncio servers treat it as a full close, and real clients don't.)
    """
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(data)
            await writer.drain()
            return await reader.read()
        except ConnectionError:
            return b""
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def status_of(answer: bytes) -> int:
    status_line = answer.split(b"\r\n", 1)[0]
    return int(status_line.split(b" ")[1])


COMMANDS = [
    ("nextitem", DacpAction(ActionKind.NEXT)),
    ("previtem", DacpAction(ActionKind.PREVIOUS)),
    ("playpause", DacpAction(ActionKind.PLAY_PAUSE)),
    ("pause", DacpAction(ActionKind.PAUSE)),
    ("stop", DacpAction(ActionKind.STOP)),
    ("volumeup", DacpAction(ActionKind.VOLUME_UP)),
    ("volumedown", DacpAction(ActionKind.VOLUME_DOWN)),
    ("shuffle_songs", DacpAction(ActionKind.TOGGLE_SHUFFLE)),
    ("setproperty?dmcp.device-volume=-15.000000", DacpAction(ActionKind.SET_VOLUME, 50)),
    ("setproperty?dmcp.volume=73.000000", DacpAction(ActionKind.SET_VOLUME, 73)),
    ("setproperty?dmcp.device-prevent-playback=1", DacpAction(ActionKind.STOP_SESSION)),
]


@pytest.mark.parametrize(("command", "expected"), COMMANDS)
@pytest.mark.parametrize("token", sorted(TOKENS))
async def test_every_command_routed_to_the_right_player(
    server: DacpServer,
    target: FakeTarget,
    http: aiohttp.ClientSession,
    command: str,
    expected: DacpAction,
    token: str,
) -> None:
    player_id = TOKENS[token]
    if expected.kind is ActionKind.SET_VOLUME:  # a device change differs from the current 50
        target.states[player_id] = replace(target.states[player_id], volume=10)
    status, headers, body = await get(http, server, f"/ctrl-int/1/{command}", token)
    assert status == 204
    assert body == b""
    assert headers["DAAP-Server"].startswith("iTunes/")
    assert headers["Content-Type"] == "application/x-dmap-tagged"
    assert await target.next_action() == (player_id, expected)
    assert target.actions == [(player_id, expected)]


async def test_play_while_playing_is_ignored_but_routed_when_paused(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    assert (await get(http, server, "/ctrl-int/1/play", "1001"))[0] == 204
    target.states["p2"] = replace(target.states["p2"], playing=False)
    assert (await get(http, server, "/ctrl-int/1/play", "2002"))[0] == 204
    assert await target.next_action() == ("p2", DacpAction(ActionKind.PLAY))
    assert target.actions == [("p2", DacpAction(ActionKind.PLAY))]


@pytest.mark.parametrize("token", ["1001", "9999"])
async def test_204_states_content_length_zero_like_real_dacp_servers(
    server: DacpServer, token: str
) -> None:
    """shairport-sync's DACP client reads until Content-Length; without it every press fails."""
    request = (
        f"GET /ctrl-int/1/nextitem HTTP/1.1\r\nHost: {HOST}\r\nActive-Remote: {token}\r\n\r\n"
    ).encode()
    answer = await raw_exchange(server.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 204 No Content"
    assert b"Content-Length: 0" in lines[1:]
    assert body == b""


@pytest.mark.parametrize("token", [None, "9999", "abc", "", "99999999999"])
async def test_unknown_or_missing_active_remote_changes_nothing(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession, token: str | None
) -> None:
    for command in ("nextitem", "stop", "setproperty?dmcp.device-prevent-playback=1"):
        status, _, body = await get(http, server, f"/ctrl-int/1/{command}", token)
        assert (status, body) == (204, b"")
    # A marker command afterwards: it must be the first and only action.
    assert (await get(http, server, "/ctrl-int/1/volumeup", "1001"))[0] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.VOLUME_UP))
    assert target.actions == [("p1", DacpAction(ActionKind.VOLUME_UP))]


async def test_reply_does_not_wait_for_the_host(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    target.gate = asyncio.Event()
    assert (await get(http, server, "/ctrl-int/1/nextitem", "1001"))[0] == 204
    assert (await get(http, server, "/ctrl-int/1/previtem", "1001"))[0] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.NEXT))
    assert not target.gate.is_set()  # host still busy with nextitem; both replies arrived
    assert target.queue.empty()  # previtem waits for nextitem: device order is kept
    target.gate.set()
    assert await target.next_action() == ("p1", DacpAction(ActionKind.PREVIOUS))


async def test_volume_echo_suppressed_but_device_changes_applied(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    server.note_volume_sent("p1", 60)
    # -12 dB is 60: the device echoing our own command → state only
    assert (await get(http, server, "/ctrl-int/1/setproperty?dmcp.device-volume=-12", "1001"))[
        0
    ] == 204
    assert await target.next_action() == (
        "p1",
        DacpAction(ActionKind.UPDATE_VOLUME_STATE, 60),
    )
    # -6 dB is 80: the user turned the knob → apply
    assert (await get(http, server, "/ctrl-int/1/setproperty?dmcp.device-volume=-6", "1001"))[
        0
    ] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.SET_VOLUME, 80))
    # the other player never had a volume sent: 60 there is a real change
    target.states["p2"] = replace(target.states["p2"], volume=20)
    assert (await get(http, server, "/ctrl-int/1/setproperty?dmcp.device-volume=-12", "2002"))[
        0
    ] == 204
    assert await target.next_action() == ("p2", DacpAction(ActionKind.SET_VOLUME, 60))


async def test_device_volume_ignored_when_player_says_so(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    target.states["p1"] = replace(target.states["p1"], ignore_device_volume=True)
    assert (await get(http, server, "/ctrl-int/1/setproperty?dmcp.volume=5", "1001"))[0] == 204
    assert (await get(http, server, "/ctrl-int/1/stop", "1001"))[0] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.STOP))
    assert target.actions == [("p1", DacpAction(ActionKind.STOP))]


async def test_discrete_pause_fires_after_debounce(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    sent_at = loop.time()
    assert (await get(http, server, "/ctrl-int/1/discrete-pause", "1001"))[0] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.PAUSE))
    assert loop.time() - sent_at >= DEBOUNCE_S


async def test_prevent_playback_cancels_discrete_pause_and_stops(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    prevent = "/ctrl-int/1/setproperty?dmcp.device-prevent-playback=1"
    assert (await get(http, server, "/ctrl-int/1/discrete-pause", "1001"))[0] == 204
    assert (await get(http, server, prevent, "1001"))[0] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.STOP_SESSION))
    assert server.prevent_playback("p1")
    # duplicate prevent-playback: ignored; give a wrongly kept pause timer time to fire
    assert (await get(http, server, prevent, "1001"))[0] == 204
    await asyncio.sleep(DEBOUNCE_S * 4)
    assert (await get(http, server, "/ctrl-int/1/volumedown", "1001"))[0] == 204
    assert await target.next_action() == ("p1", DacpAction(ActionKind.VOLUME_DOWN))
    assert [a.kind for _, a in target.actions] == [ActionKind.STOP_SESSION, ActionKind.VOLUME_DOWN]
    # a new stream resets the state
    server.reset_player("p1")
    assert not server.prevent_playback("p1")


async def test_prevent_playback_semantics_grouped_and_transitioning(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    prevent = "/ctrl-int/1/setproperty?dmcp.device-prevent-playback=1"
    target.states["p1"] = replace(target.states["p1"], transitioning=True)
    target.states["p2"] = replace(target.states["p2"], grouped=True)
    assert (await get(http, server, prevent, "1001"))[0] == 204
    assert (await get(http, server, prevent, "2002"))[0] == 204
    assert await target.next_action() == ("p2", DacpAction(ActionKind.LEAVE_GROUP))
    assert target.actions == [("p2", DacpAction(ActionKind.LEAVE_GROUP))]
    assert not server.prevent_playback("p1")
    allow = "/ctrl-int/1/setproperty?dmcp.device-prevent-playback=0"
    assert (await get(http, server, allow, "2002"))[0] == 204
    assert not server.prevent_playback("p2")


async def test_getproperty_volume_answers_dmap(
    server: DacpServer, target: FakeTarget, http: aiohttp.ClientSession
) -> None:
    path = "/ctrl-int/1/getproperty?properties=dmcp.volume"
    status, headers, body = await get(http, server, path, "2002")
    assert status == 200
    assert headers["Content-Type"] == "application/x-dmap-tagged"
    assert body == encode_volume_property(50)
    assert (await get(http, server, path, "4242"))[:3:2] == (204, b"")
    assert target.actions == []


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /server-info HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /ctrl-int/1/setproperty?dmcp.volume=abc HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"PUT /ctrl-int/1/play HTTP/1.1\r\nHost: x\r\nActive-Remote: 1001\r\n\r\n", 405),
        (
            b"GET /ctrl-int/1/play HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc",
            413,
        ),
        (
            b"GET /ctrl-int/1/play HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 3000) for i in range(3))
            + b"\r\n",
            431,
        ),
        (b"GET /ctrl-int/1/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), 400),
        (b"GET /ctrl-int/1/play HTTP/1.0\r\n\r\n", 204),
    ],
)
async def test_bad_requests_get_client_errors(
    server: DacpServer, target: FakeTarget, request_bytes: bytes, status: int
) -> None:
    answer = await raw_exchange(server.port, request_bytes)
    assert status_of(answer) == status
    assert target.actions == []


async def test_chunked_body_over_limit_is_rejected(server: DacpServer) -> None:
    chunk = b"%x\r\n%s\r\n" % (40000, b"z" * 40000)
    request = (
        b"POST /ctrl-int/1/play HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunk * 2
        + b"0\r\n\r\n"
    )
    assert status_of(await raw_exchange(server.port, request)) == 413


async def test_stalled_connection_is_closed(target: FakeTarget) -> None:
    async with DacpServer(target, DACP_ID, hosts=[HOST], max_connection_age_s=0.2) as dacp:
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection(HOST, dacp.port)
            try:
                writer.write(b"GET /ctrl-int/1/play HTTP/1.1\r\nHost: x\r\n")
                assert await reader.read() == b""  # closed by the server, no answer
            finally:
                writer.close()
                await writer.wait_closed()


async def test_port_range_is_respected_and_stop_frees_the_port(target: FakeTarget) -> None:
    first = DacpServer(target, DACP_ID, hosts=[HOST])
    second = DacpServer(target, DACP_ID, hosts=[HOST])
    async with first, second:
        assert 39831 <= first.port <= 49830
        assert 39831 <= second.port <= 49830
        assert first.port != second.port
        port = first.port
    assert first.port == 0
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection(HOST, port), WAIT_S)


# -- fuzzing -------------------------------------------------------------------------------

_token = st.sampled_from(["1001", "2002", "0", "x", "", "1" * 30])
_paths = st.one_of(
    st.sampled_from(
        [
            "/ctrl-int/1/nextitem",
            "/ctrl-int/1/discrete-pause",
            "/ctrl-int/1/setproperty?dmcp.device-volume=-20.5",
            "/ctrl-int/1/setproperty?dmcp.device-prevent-playback=1",
            "/ctrl-int/1/getproperty?properties=dmcp.volume",
            "*",
            "/",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80).map(
        lambda s: "/ctrl-int/1/" + s
    ),
    st.text(max_size=40),
)
_header = st.one_of(
    st.tuples(st.just("Active-Remote"), _token),
    st.tuples(st.just("Content-Length"), st.integers(-5, 200_000).map(str)),
    st.tuples(st.just("Transfer-Encoding"), st.sampled_from(["chunked"] * 3 + ["gzip", "x"])),
    st.tuples(st.just("Host"), st.sampled_from(["x", "", "127.0.0.1:1"])),
    st.tuples(st.text(max_size=20), st.text(max_size=60)),
)


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "G ET", ""]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]))
    lines = [f"{method} {draw(_paths)} {version}"]
    if draw(st.booleans()):
        lines.append("Host: 127.0.0.1")
    lines += [f"{name}: {value}" for name, value in draw(st.lists(_header, max_size=6))]
    head = "\r\n".join(lines).encode("utf-8", "surrogatepass")
    separator = draw(st.sampled_from([b"\r\n\r\n"] * 4 + [b"\n\n", b"\r\n", b""]))
    body = draw(st.binary(max_size=300))
    if draw(st.booleans()):  # a well-formed chunked body
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return head + separator + body


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request_bytes=http_requests())
async def test_fuzzed_requests_only_get_client_answers(
    impatient_server: DacpServer,
    target: FakeTarget,
    http: aiohttp.ClientSession,
    request_bytes: bytes,
) -> None:
    server = impatient_server
    answer = await raw_exchange(server.port, request_bytes)
    if answer:  # one answer at most (the server closes after it), or just a close
        status = status_of(answer)
        allowed = status == 204 or 400 <= status < 500
        if b"getproperty" in request_bytes:
            allowed = allowed or status == 200
        assert allowed, (status, answer[:200])
    # still serving
    while not target.queue.empty():
        target.queue.get_nowait()
    status, _, _ = await get(http, server, "/ctrl-int/1/volumeup", "2002")
    assert status == 204
    assert await target.next_action() == ("p2", DacpAction(ActionKind.VOLUME_UP))


# -- mDNS ----------------------------------------------------------------------------------


async def test_registered_service_is_visible_and_withdrawn(target: FakeTarget) -> None:
    publisher = AsyncZeroconf(interfaces=[HOST], ip_version=IPVersion.V4Only)
    observer = AsyncZeroconf(interfaces=[HOST], ip_version=IPVersion.V4Only)
    removed = asyncio.Event()
    name = dacp_service_name(DACP_ID)

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if name == dacp_service_name(DACP_ID) and state_change is ServiceStateChange.Removed:
            removed.set()

    browser: AsyncServiceBrowser | None = None
    try:
        async with DacpServer(target, DACP_ID, hosts=[HOST], zeroconf=publisher) as dacp:
            assert dacp.registered
            assert name == "iTunes_Ctrl_00112233AABBCCDD._dacp._tcp.local."
            info = await observer.async_get_service_info(DACP_SERVICE_TYPE, name, timeout=3000)
            assert info is not None
            assert info.port == dacp.port
            assert info.parsed_addresses() == [HOST]
            assert info.decoded_properties == {
                "txtvers": "1",
                "Ver": "131077",
                "DbId": DACP_ID,
                "OSsi": "0x1F5",
            }
            browser = AsyncServiceBrowser(
                observer.zeroconf, DACP_SERVICE_TYPE, handlers=[on_change]
            )
        assert not dacp.registered
        async with asyncio.timeout(WAIT_S):
            await removed.wait()
    finally:
        if browser is not None:
            await browser.async_cancel()
        await observer.async_close()
        await publisher.async_close()


def test_wildcard_bind_with_zeroconf_needs_publish_addresses(target: FakeTarget) -> None:
    zeroconf = object.__new__(AsyncZeroconf)  # never used: the constructor rejects first
    with pytest.raises(ValueError, match="publish_addresses"):
        DacpServer(target, DACP_ID, zeroconf=zeroconf)
