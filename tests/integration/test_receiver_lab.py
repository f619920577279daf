"""The local receiver lab: real shairport-sync receivers on loopback, and its helpers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
from zeroconf import ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from airplay_provider.host import receivers as lab_module
from airplay_provider.host.receivers import (
    ReceiverLab,
    ReceiverLabError,
    ReceiverSpec,
    parse_avahi_browse,
)
from tests.receivers.packet_loss import drop_udp_packets
from tests.receivers.shairport import StartShairport

RAOP = "_raop._tcp.local."


class RawRtsp:
    """One RTSP connection driven with raw bytes (independent of the package's rtsp module)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> RawRtsp:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str]]:
        """Send one request; return the response status and headers (lower-case names)."""
        self.writer.write(request)
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 3)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        assert status_line.startswith("RTSP/1.0 ")
        pairs = (line.partition(":") for line in lines if line)
        return int(status_line.split()[1]), {k.strip().lower(): v.strip() for k, _, v in pairs}

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def rtsp_exchange(port: int, request: bytes) -> tuple[int, dict[str, str]]:
    """Send one raw RTSP request on a fresh connection; return status and headers."""
    connection = await RawRtsp.connect(port)
    try:
        return await connection.exchange(request)
    finally:
        await connection.close()


def digest_authorization(
    challenge: str, method: str, uri: str, password: str, user: str = "iTunes"
) -> str:
    """RFC 2617 Digest (no qop) answer to a ``WWW-Authenticate: Digest ...`` challenge."""
    found = re.fullmatch(r'Digest realm="([^"]+)", nonce="([^"]+)"', challenge)
    assert found is not None, challenge
    realm, nonce = found.groups()

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'{method}:{uri}')}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}"'
    )


def options_request(authorization: str | None = None) -> bytes:
    challenge = base64.b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
    extra = f"Authorization: {authorization}\r\n" if authorization else ""
    return f"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nApple-Challenge: {challenge}\r\n{extra}\r\n".encode()


def announce_request(port: int) -> bytes:
    sdp = (
        b"v=0\r\no=iTunes 1 0 IN IP4 127.0.0.1\r\ns=iTunes\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"m=audio 0 RTP/AVP 96\r\na=rtpmap:96 AppleLossless\r\n"
        b"a=fmtp:96 352 0 16 40 10 14 2 255 0 0 44100\r\n"
    )
    return (
        f"ANNOUNCE rtsp://127.0.0.1:{port}/1 RTSP/1.0\r\nCSeq: 2\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode() + sdp


def exists(path: str | Path) -> bool:
    return os.path.exists(path)


def our_processes(*markers: str) -> list[str]:
    """Command lines of live processes that mention any marker (lab dir, avahi host name)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(m in cmdline for m in markers):
            found.append(f"{entry.name}: {cmdline}")
    return found


def assert_apple_response(headers: dict[str, str]) -> None:
    assert headers["server"].startswith("AirTunes/")
    assert len(base64.b64decode(headers["apple-response"] + "==")) == 256  # RSA-2048 signature


@pytest.mark.receiver
async def test_open_receiver_answers_options_with_apple_response(
    start_shairport: StartShairport,
) -> None:
    receiver = await start_shairport("open")
    status, headers = await rtsp_exchange(receiver.port, options_request())
    assert status == 200
    assert_apple_response(headers)
    assert "ANNOUNCE" in headers["public"]


@pytest.mark.receiver
async def test_password_receiver_demands_digest_for_every_request(
    start_shairport: StartShairport,
) -> None:
    receiver = await start_shairport("locked", password="s3cret")
    status, headers = await rtsp_exchange(receiver.port, announce_request(receiver.port))
    assert status == 401
    assert headers["www-authenticate"].startswith('Digest realm="raop", nonce="')
    connection = await RawRtsp.connect(receiver.port)
    try:
        # 3.3.8 refuses even OPTIONS without credentials (but still signs the challenge).
        status, headers = await connection.exchange(options_request())
        assert status == 401
        assert_apple_response(headers)
        challenge = headers["www-authenticate"]
        wrong = digest_authorization(challenge, "OPTIONS", "*", "wrong")
        assert (await connection.exchange(options_request(wrong)))[0] == 401
        # The nonce belongs to the connection: answer the latest challenge on the same one.
        good = digest_authorization(challenge, "OPTIONS", "*", "s3cret")
        status, headers = await connection.exchange(options_request(good))
        assert status == 200
        assert_apple_response(headers)
    finally:
        await connection.close()


@pytest.mark.receiver
async def test_receivers_are_advertised_on_lo_with_real_txt(
    receiver_lab: ReceiverLab, start_shairport: StartShairport
) -> None:
    open_receiver = await start_shairport("open")
    locked = await start_shairport("locked", password="pw", metadata=True)
    open_service = await receiver_lab.wait_advertised(open_receiver)
    locked_service = await receiver_lab.wait_advertised(locked)
    print("avahi-browse TXT:", locked_service)
    for service, receiver in ((open_service, open_receiver), (locked_service, locked)):
        assert re.fullmatch(rf"[0-9A-F]{{12}}@{receiver.name}", service.name)
        assert (service.interface, service.protocol) == ("lo", "IPv4")
        assert (service.address, service.port) == ("127.0.0.1", receiver.port)
        assert service.host == f"{receiver_lab.host_name}.local"
        assert service.txt_dict()["et"] == "0,1"
        assert service.txt_dict()["am"] == "ShairportSync"
    assert open_service.txt_dict()["pw"] == "false"
    assert "md" not in open_service.txt_dict()  # 3.3.8 announces md only with metadata on
    assert locked_service.txt_dict()["pw"] == "true"
    assert locked_service.txt_dict()["md"] == "0,2"
    avahi_log = (receiver_lab.directory / "avahi.log").read_text()
    joined = [ln for ln in avahi_log.splitlines() if ln.startswith("Joining mDNS")]
    assert joined == ["Joining mDNS multicast group on interface lo.IPv4 with address 127.0.0.1."]


@pytest.mark.receiver
async def test_python_zeroconf_on_loopback_sees_the_receiver(
    receiver_lab: ReceiverLab, start_shairport: StartShairport
) -> None:
    receiver = await start_shairport("zc")
    wanted = f"@{receiver.name}.{RAOP}"
    found: asyncio.Queue[str] = asyncio.Queue()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added and name.endswith(wanted):
            found.put_nowait(name)

    azc = AsyncZeroconf(interfaces=["127.0.0.1"])
    browser = AsyncServiceBrowser(azc.zeroconf, RAOP, handlers=[on_change])
    try:
        name = await asyncio.wait_for(found.get(), 10)
        info = AsyncServiceInfo(RAOP, name)
        assert await info.async_request(azc.zeroconf, 3000)
        assert info.port == receiver.port
        assert info.parsed_addresses() == ["127.0.0.1"]
        assert info.server == f"{receiver_lab.host_name}.local."
        assert info.properties[b"et"] == b"0,1"
        assert info.properties[b"pw"] == b"false"
    finally:
        await browser.async_cancel()
        await azc.async_close()


@pytest.mark.receiver
async def test_two_labs_coexist_and_leave_nothing_behind() -> None:
    async with ReceiverLab() as lab_a, ReceiverLab() as lab_b:
        markers = [str(lab_a.directory), str(lab_b.directory), lab_a.host_name, lab_b.host_name]
        dirs = [lab_a.directory, lab_b.directory]
        spec_a = ReceiverSpec(f"lab-a-{secrets.token_hex(3)}")
        spec_b = ReceiverSpec(f"lab-b-{secrets.token_hex(3)}")
        receiver_a, receiver_b = await asyncio.gather(
            lab_a.start_receiver(spec_a), lab_b.start_receiver(spec_b)
        )
        seen_a, seen_b = await asyncio.gather(
            lab_a.wait_advertised(receiver_a), lab_b.wait_advertised(receiver_b)
        )
        assert seen_a.host == f"{lab_a.host_name}.local"
        assert seen_b.host == f"{lab_b.host_name}.local"
        for lab in (lab_a, lab_b):
            log = (lab.directory / "avahi.log").read_text()
            assert "Host name conflict" not in log
            assert f"Host name is {lab.host_name}.local" in log
        for receiver in (receiver_a, receiver_b):
            status, _ = await rtsp_exchange(receiver.port, options_request())
            assert status == 200
        pids = lab_a.pids + lab_b.pids
        assert len(pids) == 8  # dbus, avahi, avahi-publish, shairport-sync per lab
        assert len(our_processes(*markers)) >= 8
    assert our_processes(*markers) == []
    assert not any(exists(f"/proc/{pid}") for pid in pids)
    assert not any(exists(directory) for directory in dirs)


@pytest.mark.receiver
async def test_teardown_after_an_exception_inside_the_lab(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    async def failing_test() -> None:
        async with ReceiverLab(tmp_path) as lab:
            seen.update(directory=str(lab.directory), host=lab.host_name)
            receiver = await lab.start_receiver(ReceiverSpec("boom"))
            seen["output"] = str(receiver.output_path)
            assert exists(receiver.output_path)
            raise RuntimeError("test failure")

    with pytest.raises(RuntimeError, match="test failure"):
        await failing_test()
    assert Path(seen["directory"]).parent == tmp_path
    assert our_processes(seen["directory"], seen["host"]) == []
    assert not exists(seen["directory"])


@pytest.mark.receiver
async def test_receiver_dying_at_start_raises_with_its_log(
    receiver_lab: ReceiverLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lab_module, "_shairport_config", lambda *_: "general = { broken\n")
    with pytest.raises(ReceiverLabError, match=r"died at start(.|\n)*log tail"):
        await receiver_lab.start_receiver(ReceiverSpec("broken"))
    assert all(r.name != "broken" for r in receiver_lab.receivers)


@pytest.mark.receiver
async def test_duplicate_name_is_refused(receiver_lab: ReceiverLab) -> None:
    receiver = await receiver_lab.start_receiver(ReceiverSpec(f"dup-{secrets.token_hex(3)}"))
    try:
        with pytest.raises(ReceiverLabError, match="already running"):
            await receiver_lab.start_receiver(ReceiverSpec(receiver.name))
    finally:
        await receiver_lab.stop_receiver(receiver)
    assert not exists(f"/proc/{receiver.pid}")


async def test_missing_binary_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ReceiverLabError, match=r"dbus-daemon not found: apt-get install dbus"):
        async with ReceiverLab():
            pass


def test_parse_avahi_browse_lines() -> None:
    output = (
        "+;lo;IPv4;AABBCCDDEEFF\\064Kitchen;_raop._tcp;local\n"
        "=;lo;IPv4;AABBCCDDEEFF\\064Kitchen\\059 2;_raop._tcp;local;h.local;127.0.0.1;5000;"
        '"pw=true" "am=A\\"B" "et=0,1"\n'
        "=;lo;IPv4;bad;_raop._tcp;local;h.local;127.0.0.1;notaport;\n"
    )
    (service,) = parse_avahi_browse(output)
    assert service.name == "AABBCCDDEEFF@Kitchen; 2"
    assert (service.host, service.address, service.port) == ("h.local", "127.0.0.1", 5000)
    assert service.txt == ["pw=true", 'am=A"B', "et=0,1"]
    assert service.txt_dict() == {"pw": "true", "am": 'A"B', "et": "0,1"}


def _iptables_rules() -> str:
    return subprocess.run(
        ["iptables", "-w", "5", "-S", "INPUT"], capture_output=True, text=True, check=True
    ).stdout


def test_packet_loss_drops_on_input_and_always_removes_its_rule() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        port = rx.getsockname()[1]
        with drop_udp_packets(port, 1.0):
            assert f"--dport {port}" in _iptables_rules()
            for _ in range(20):
                tx.sendto(b"dropped", ("127.0.0.1", port))  # no EPERM: dropped on INPUT
        assert f"--dport {port}" not in _iptables_rules()
        tx.sendto(b"marker", ("127.0.0.1", port))
        assert rx.recv(64) == b"marker"  # loopback delivery is in order: nothing got through

        with drop_udp_packets(port, 0.5):
            for _ in range(400):
                tx.sendto(b"x", ("127.0.0.1", port))
        tx.sendto(b"marker", ("127.0.0.1", port))
        received = 0
        while rx.recv(64) != b"marker":
            received += 1
        assert 120 < received < 280  # Binomial(400, 0.5): mean 200, sd 10

        with pytest.raises(ValueError, match="boom"), drop_udp_packets(port, 0.2):
            raise ValueError("boom")
        assert f"--dport {port}" not in _iptables_rules()
        assert os.geteuid() == 0
