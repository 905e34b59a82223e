#!/usr/bin/env python3
"""
Event Socket parse throughput on the captured event streams (not a test: a measurement).

Every C{text/event-json} (or C{text/event-plain}) frame of C{tests/fixtures/esl/} is
concatenated into one stream, repeated, and fed in 64 KiB reads through the full client
protocol (framing, event decoding, correlation, dispatch to a listener that keeps
nothing).  Throughput is events per CPU second of this process (C{time.process_time});
on a shared machine other load still slows a round down, so the best of several rounds
is the figure (as C{timeit} does), with the median beside it.  Target: 50,000 JSON
events/s.

    .venv/bin/python scripts/bench_esl.py [--seconds 1] [--rounds 5]
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


def measure(content_type: str, seconds: float) -> tuple[float, float]:
    """
    One round: (events per CPU second, MB per CPU second).
    """
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
    return listener.count / elapsed, passes * len(data) / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per stream")
    args = parser.parse_args()
    for content_type in ("text/event-json", "text/event-plain"):
        _, events = event_stream(content_type)
        rates = sorted(measure(content_type, args.seconds) for _ in range(args.rounds))
        best, median = rates[-1], rates[len(rates) // 2]
        print(
            f"{content_type:17} {events:4} captured events: best {best[0]:9,.0f} events/s "
            f"({best[1]:5.1f} MB/s), median {median[0]:9,.0f} events/s "
            f"over {args.rounds} rounds"
        )


if __name__ == "__main__":
    main()
