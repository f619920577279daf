"""The emulator's video endpoints are strict: what a real device refuses, it refuses and records;
it fetches with range requests and only from loopback. (Our one-file server is checked here too.)"""

from __future__ import annotations

import asyncio
import plistlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from airplay_provider.video.media_server import MediaServer
from tests.receivers.ap2_emulator_core import AccessoryConnection, AccessoryDevice, EmuRequest
from tests.receivers.ap2_video import Ap2Video, VideoItem

HOST = "127.0.0.1"


def request(method: str, path: str, body: bytes = b"", content_type: str = "") -> EmuRequest:
    headers = {"content-type": content_type} if content_type else {}
    return EmuRequest(method, path, "HTTP/1.1", headers, body)


def text_play(url: str, start: str = "0.0") -> EmuRequest:
    body = f"Content-Location: {url}\nStart-Position: {start}\n".encode()
    return request("POST", "/play", body, "text/parameters")


async def wait_for(item: VideoItem) -> None:
    assert item.task is not None
    await asyncio.wait_for(item.task, 5.0)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[MediaServer, bytes]]:
    content = bytes(range(256)) * 100  # 25600 bytes
    (tmp_path / "a.bin").write_bytes(content)
    async with MediaServer(tmp_path / "a.bin", HOST) as server:
        yield server, content


async def test_media_server_serves_one_file_by_range_and_nothing_else(
    served: tuple[MediaServer, bytes], tmp_path: Path
) -> None:
    server, content = served
    (tmp_path / "secret.txt").write_text("no")
    base = f"http://{HOST}:{server.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url, headers={"Range": "bytes=100-199"}) as r:
            assert r.status == 206
            assert r.headers["Content-Range"] == f"bytes 100-199/{len(content)}"
            assert await r.read() == content[100:200]
        async with http.get(server.url) as r:
            assert await r.read() == content
        for path in ("/a.bin", "/secret.txt", server.route.rsplit("/", 1)[0] + "/secret.txt"):
            async with http.get(base + path) as r:
                assert r.status == 404
        async with http.post(server.url) as r:
            assert r.status == 405


async def test_play_with_text_parameters_and_a_start_position(
    served: tuple[MediaServer, bytes],
) -> None:
    server, content = served
    device = AccessoryDevice()
    connection = AccessoryConnection(device)
    async with Ap2Video(device, byte_rate=10_000) as video:
        assert video.handle(connection, text_play(server.url, "0.5")) is not None
        (item,) = video.items
        await wait_for(item)
        info = video.handle(connection, request("GET", "/playback-info"))
    assert item.ranges[0][0] == len(content) // 2
    assert bytes(item.data[len(content) // 2 :]) == content[len(content) // 2 :]
    assert item.ended
    assert info is not None
    assert plistlib.loads(info.body)["position"] == pytest.approx(2.56)
    assert device.errors == []


@pytest.mark.parametrize(
    ("req", "status", "message"),
    [
        (request("POST", "/play", b"x", "application/json"), 415, "unexpected Content-Type"),
        (request("POST", "/play", b"junk", "application/x-apple-binary-plist"), 400, "unread"),
        (text_play("file:///etc/passwd"), 400, "bad Content-Location"),
        (text_play("http://127.0.0.1/a", "2"), 400, "not in 0..1"),
        (request("POST", "/rate?value=1"), 400, "nothing loaded"),
        (request("POST", "/rate?value=fast"), 400, "bad value"),
        (request("POST", "/scrub?position=1"), 400, "nothing loaded"),
        (request("GET", "/stop"), 405, "method not allowed"),
    ],
)
async def test_bad_video_requests_are_refused_and_recorded(
    req: EmuRequest, status: int, message: str
) -> None:
    device = AccessoryDevice()
    async with Ap2Video(device) as video:
        response = video.handle(AccessoryConnection(device), req)
    assert response is not None
    assert response.status == status
    assert len(device.errors) == 1
    assert message in device.errors[0]


async def test_other_paths_are_not_video() -> None:
    device = AccessoryDevice()
    async with Ap2Video(device) as video:
        assert video.handle(AccessoryConnection(device), request("GET", "/info")) is None
    assert video.requests == []


async def test_require_pairing_refuses_plaintext_with_470() -> None:
    device = AccessoryDevice()
    async with Ap2Video(device, require_pairing=True) as video:
        response = video.handle(AccessoryConnection(device), request("GET", "/playback-info"))
    assert response is not None
    assert response.status == 470
    assert device.errors == ["GET /playback-info without pair-verify"]


async def test_fetches_from_loopback_only() -> None:
    device = AccessoryDevice()
    async with Ap2Video(device) as video:
        video.handle(AccessoryConnection(device), text_play("http://192.0.2.1/a.mp4"))
        (item,) = video.items
        await wait_for(item)
    assert item.error == (-1004, "emulator fetches from loopback only, not '192.0.2.1'")
    assert device.errors == [f"playback error -1004: {item.error[1]}"]


async def test_a_server_that_ignores_range_is_a_bad_server_response() -> None:
    async def whole(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 1000)

    app = web.Application()
    app.router.add_get("/a.mp4", whole)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    device = AccessoryDevice()
    try:
        await web.TCPSite(runner, HOST, 0).start()
        url = f"http://{HOST}:{runner.addresses[0][1]}/a.mp4"
        async with Ap2Video(device) as video:
            video.handle(AccessoryConnection(device), text_play(url))
            (item,) = video.items
            await wait_for(item)
            info = video.handle(AccessoryConnection(device), request("GET", "/playback-info"))
    finally:
        await runner.cleanup()
    assert item.error == (-1011, "range request answered 200")
    assert info is not None
    assert plistlib.loads(info.body)["error"]["code"] == -1011
    assert device.errors == ["playback error -1011: range request answered 200"]
