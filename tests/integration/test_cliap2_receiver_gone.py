"""`bin/cliap2` notices an AirPlay 2 receiver that went away mid-stream within a second:
`[STATUS] error code=receiver_gone`, exit 1 (the shared streamer watch, issue 14)."""

from __future__ import annotations

import asyncio

from tests.audio import test_signal
from tests.receivers.ap2_receiver import Ap2Receiver
from tests.receivers.ap2_sender import NO_PTP_FEATURES, Cliap2, ntp_in


async def test_a_receiver_gone_is_reported_within_a_second() -> None:
    loop = asyncio.get_running_loop()
    async with Ap2Receiver(features=NO_PTP_FEATURES) as receiver:
        _, start_ntp = ntp_in(0.8)
        run = await Cliap2.start(address="127.0.0.1", port=receiver.port, ntpstart=start_ntp)
        feeding = asyncio.create_task(run.feed(test_signal(8.0)))
        await run.wait_status("started")
        await asyncio.sleep(1.0)
        gone = loop.time()
        await receiver.stop()  # its connections and ports close
        code = await run.finish(10.0)
        exited_s = loop.time() - gone
        feeding.cancel()
    (error,) = run.status("error")
    assert error["code"] == "receiver_gone", run.text()
    assert error["message"].startswith("receiver gone")
    assert code == 1
    assert exited_s < 1.0, f"exited {exited_s:.2f} s after the receiver went away"
