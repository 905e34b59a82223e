#!/usr/bin/env python3
"""
Event Socket parse throughput on the captured event streams (not a test: a measurement).

Every C{text/event-json} (or C{text/event-plain}) frame of C{tests/fixtures/esl/} is
concatenated into one stream, repeated, and fed in 64 KiB reads through the full client
protocol (framing, event decoding, correlation, dispatch to a listener that keeps
nothing).  Throughput is events per CPU second of this process (C{time.process_time}),
so other load on the machine does not count against it.  Target: 50,000 JSON events/s.

    .venv/bin/python scripts/bench_esl.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from twisted.internet.testing import StringTransport

from iradialer.protocols.esl import Event, EventSocketClient, FrameParser

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "esl"
READ_SIZE = 64 * 1024


class Discard:
    count = 0

    def event_received(self, event: Event) -> None:
        self.count += 1

    def connection_lost(self, reason: object) -> None:
        pass


def event_stream(content_type: str) -> tuple[bytes, int]:
    parser = FrameParser()
    frames = []
    for path in sorted(CAPTURES.glob("*.recv.raw")):
        parser.feed(path.read_bytes())
        frames.extend(f for f in parser.frames() if f.content_type == content_type)
    data = b"".join(
        f"Content-Length: {len(f.body)}\nContent-Type: {content_type}\n\n".encode() + f.body
        for f in frames
    )
    return data, len(frames)


def measure(content_type: str, seconds: float) -> tuple[float, float, int, int]:
    data, per_pass = event_stream(content_type)
    reads = [data[i : i + READ_SIZE] for i in range(0, len(data), READ_SIZE)]
    listener = Discard()
    client = EventSocketClient(listener, "ClueCon")
    client.makeConnection(StringTransport())
    passes = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for chunk in reads:
            client.dataReceived(chunk)
        passes += 1
    elapsed = time.process_time() - start
    assert listener.count == passes * per_pass
    return listener.count / elapsed, passes * len(data) / elapsed / 1e6, per_pass, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per stream")
    args = parser.parse_args()
    for content_type in ("text/event-json", "text/event-plain"):
        rate, mbps, events, size = measure(content_type, args.seconds)
        print(
            f"{content_type:17} {events:4} captured events ({size / events:6.0f} B avg): "
            f"{rate:9,.0f} events/s  {mbps:6.1f} MB/s"
        )


if __name__ == "__main__":
    main()
