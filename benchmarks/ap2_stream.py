"""Benchmark `bin/cliap2`: start → `[STATUS] connected`, CPU per stream, peak RSS, PTP lock.

Runs the streamer against the emulated AirPlay 2 receiver. With root and `ip netns` (PTP needs
UDP 319/320 on both sides) sender and receiver live in two namespaces created here and removed
afterwards; otherwise (or with `--ntp`) both run on loopback with NTP timing.
Targets on loopback: connected ≤ 1 s, ≤ 3 % CPU per stream, ≤ 45 MB RSS.

    python3 benchmarks/ap2_stream.py [--seconds 10] [--ntp] [--stream-type realtime|buffered]
                                     [--hires] [--alac on|off]

`--stream-type buffered` makes the emulator offer type 103 (feature bit 40, a non-Apple model)
and reports the frames that reached it after their play time (`late_frames`). `--hires` streams
24-bit 48 kHz music-like audio (`--bits 24 --rate 48000`, buffered only); `--alac on` compresses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airplay_provider.protocol.streamer_status import parse_status_fields as parse_status  # noqa: E402
from airplay_provider.protocol.timing import ntp_from_unix_ns  # noqa: E402
from tests.audio import music_like_24, test_signal  # noqa: E402
from tests.receivers.ap2_netns import in_netns, netns_hosts  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _peak_rss_kb(pid: int) -> int:
    """VmHWM of the running image (wait4's ru_maxrss would include the forking parent)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@contextlib.contextmanager
def _hosts(use_ptp: bool) -> Iterator[tuple[list[str], list[str], str]]:
    """(sender prefix, receiver prefix, receiver address)."""
    if not use_ptp:
        yield [], [], "127.0.0.1"
        return
    with netns_hosts(1) as hosts:
        namespace, address = hosts.receivers[0]
        yield in_netns(hosts.sender, []), in_netns(namespace, []), address


def run(
    seconds: float, use_ptp: bool, out_dir: Path, stream_type: str, *, hires: bool, alac: str
) -> dict[str, object]:
    """One stream; returns the figures."""
    report_path = out_dir / "receiver.json"
    with _hosts(use_ptp) as (sender_prefix, receiver_prefix, address):
        receiver_cmd = [sys.executable, "-m", "tests.receivers.ap2_netns", address]
        receiver_cmd += ["--out", str(report_path), "--timeout", str(seconds + 20)]
        if use_ptp:
            receiver_cmd.append("--ptp")
        if stream_type == "buffered":
            receiver_cmd.append("--buffered")
        receiver = subprocess.Popen(
            receiver_prefix + receiver_cmd, cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        try:
            assert receiver.stdout is not None
            port = int(receiver.stdout.readline().split()[1])
            pcm = music_like_24(seconds) if hires else test_signal(seconds)
            start_ntp = ntp_from_unix_ns(time.time_ns() + 1_500_000_000)
            argv = [sys.executable, str(REPO / "bin" / "cliap2"), "--name", "Bench"]
            argv += ["--hostname", "bench.local", "--address", address, "--port", str(port)]
            argv += ["--txt", '"features=0x0,0x200" ', "--pipe", "-", "--ntpstart", str(start_ntp)]
            argv += ["--timing", "ptp" if use_ptp else "ntp", "--stream-type", stream_type]
            argv += ["--alac", alac, *(["--bits", "24", "--rate", "48000"] if hires else [])]
            env = {**os.environ, "AIRPLAY_PTP_LINGER_S": "0.5"}
            spawned = time.monotonic()
            sender = subprocess.Popen(
                sender_prefix + argv,
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                env=env,
            )
            marks: dict[str, float] = {}
            cpu: dict[str, float] = {}
            peak_kb = [0]

            def read_stderr() -> None:
                assert sender.stderr is not None
                for raw in sender.stderr:
                    parsed = parse_status(raw.decode(errors="replace"))
                    with contextlib.suppress(OSError):
                        peak_kb[0] = max(peak_kb[0], _peak_rss_kb(sender.pid))
                    if parsed is not None and parsed[0] not in marks:
                        marks[parsed[0]] = time.monotonic()
                        with contextlib.suppress(OSError):
                            cpu[parsed[0]] = _cpu_seconds(sender.pid)

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            assert sender.stdin is not None
            sender.stdin.write(pcm)
            sender.stdin.close()
            _, status, usage = os.wait4(sender.pid, 0)
            sender.returncode = os.waitstatus_to_exitcode(status)
            reader.join(5.0)
            ended = time.monotonic()
            receiver.wait(timeout=20)
        finally:
            for process in (receiver,):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    report = json.loads(report_path.read_text())
    streaming_s = marks.get("eof", ended) - marks.get("started", spawned)
    streaming_cpu = cpu.get("eof", 0.0) - cpu.get("started", 0.0)
    return {
        "timing": "ptp" if use_ptp else "ntp",
        "stream_type": stream_type,
        "bits": 24 if hires else 16,
        "rate": 48000 if hires else 44100,
        "alac": alac,
        "exit_code": sender.returncode,
        "connected_s": round(marks.get("connected", float("nan")) - spawned, 3),
        "cpu_percent_streaming": round(100 * streaming_cpu / max(streaming_s, 1e-9), 2),
        # buffered streams send the input ahead of time (a 6 s lead): CPU per second of audio
        # is the cost of one stream in steady state, whatever the lead
        "cpu_percent_of_audio": round(100 * streaming_cpu / seconds, 2),
        "cpu_percent_total": round(
            100 * (usage.ru_utime + usage.ru_stime) / max(ended - spawned, 1e-9), 2
        ),
        "peak_rss_mb": round(peak_kb[0] / 1024, 1),
        "receiver_errors": len(report["errors"]),
        "late_frames": sum(report["buffered"]["late_frames"]) if report["buffered"] else None,
        "ptp_lock_s": report["ptp"]["lock_s"],
        "ptp_offset_us": None
        if report["ptp"]["offset_ns"] is None
        else round(report["ptp"]["offset_ns"] / 1000, 1),
    }


def main() -> int:
    """Run and print the figures, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ntp", action="store_true", help="loopback with NTP timing")
    parser.add_argument("--stream-type", choices=("realtime", "buffered"), default="realtime")
    parser.add_argument("--hires", action="store_true", help="24-bit 48 kHz (buffered only)")
    parser.add_argument("--alac", choices=("on", "off"), default="off", help="compressed ALAC")
    args = parser.parse_args()
    if args.hires and args.stream_type != "buffered":
        parser.error("--hires needs --stream-type buffered")
    use_ptp = not args.ntp and os.geteuid() == 0
    out_dir = Path(f"/tmp/ap2-bench-{os.getpid()}")
    out_dir.mkdir(exist_ok=True)
    try:
        figures = run(
            args.seconds, use_ptp, out_dir, args.stream_type, hires=args.hires, alac=args.alac
        )
    finally:
        for path in out_dir.iterdir():
            path.unlink()
        out_dir.rmdir()
    print(f"timing, stream          {figures['timing']}, {figures['stream_type']}")
    print(f"format, ALAC            {figures['bits']}/{figures['rate']}, alac {figures['alac']}")
    print(f"start → connected       {figures['connected_s']} s   (target ≤ 1 s)")
    print(f"CPU while streaming     {figures['cpu_percent_streaming']} %  (target ≤ 3 %)")
    print(f"CPU per second of audio {figures['cpu_percent_of_audio']} %")
    print(f"CPU over the process    {figures['cpu_percent_total']} %")
    print(f"peak RSS                {figures['peak_rss_mb']} MB  (target ≤ 45 MB)")
    print(f"emulator PTP lock       {figures['ptp_lock_s']} s after its first Sync")
    print(json.dumps({"benchmark": "ap2_stream", **figures}))
    return 0 if figures["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
