#!/usr/bin/env python3
"""
iradialer under load: the simulator, iradialer and a webhook receiver in processes of their
own, driven over HTTP like a dialer application would.

    .venv/bin/python scripts/bench_load.py [--cps 100] [--max-calls 1000] [--hold 60]
        [--outcomes realistic|answered] [--no-cpa] [--requests 0] [--plot FILE.png]
        [--json FILE.json] [--profile FILE.svg] [--nice N]

Issue 10 (calls with CPA):       scripts/bench_load.py --cps 100 --max-calls 1000 --hold 60
Issue 6 (API latency):           scripts/bench_load.py --outcomes answered --max-calls 500 \
                                     --requests 200 --hold 60

What runs:

 - ``python -m iradialer.sim`` with a generated scenario file (``--outcomes realistic``: people,
   voicemail with and without a beep, fax, dead air, busy, no answer, unallocated numbers and
   rejections, each with a spread of ring times and call lengths; ``answered``: people who
   answer and stay on the line);
 - ``twistd -n iradialer --config ...`` with ``simulate = false`` and one node pointing at the
   simulator (generous node ``cps``/``max_sessions``, licenses for every call), the default
   ``[webhooks]`` settings and a store on disk;
 - a webhook receiver (this script with ``--role receiver``): a minimal HTTP/1.1 keep-alive
   responder answering 204 that stamps every arrival with the wall clock and tells this
   process, through a pipe, when a call answered, got a CPA result or hung up;
 - this process: ``setcpaparams``, then ``makecall`` at ``--cps`` until ``--max-calls`` are
   live (a call is live from its makecall until its hangup event arrives), then ``--hold``
   seconds during which ended calls are replaced (still at most ``--cps`` a second) and, with
   ``--requests N``, N requests a second of a mix (getdetails, playtext, stopplay, senddtmf,
   makecall, dropcall, status).  Like a dialer, it drops a call whose CPA found a machine,
   fax or modem once CPA is done; people hang up by themselves.  Then it stops dialing, waits
   for every call to end and every event to arrive, and reports.

What it reports (all from one run):

 - achieved calls per second (ramp, hold), API latency (request sent to response read, in
   this process) p50/p99 by endpoint and overall;
 - webhook latency: arrival at the receiver minus the event's ``timestamp`` (when iradialer
   queued it; millisecond resolution, so figures may be up to 1 ms high);
 - CPA decision lateness: the arrival of a ``cpa_detection`` minus the moment the audio made
   the decision possible, which is the call's ``answered`` timestamp plus the detection's
   ``ms_since_answer``.  iradialer opens a call's audio stream in the same reactor turn in
   which it stamps ``answered``, and stamps each frame with its arrival time on that clock,
   so this is the time from the deciding frame's arrival to the webhook's: waiting for the
   20 ms tick, the analysis, queueing the event (a durable commit) and delivering it;
 - iradialer's CPU (utime + stime from /proc/<pid>/stat, every thread) over the hold, and its
   peak RSS (VmHWM); the others' CPU for context;
 - events: for every call, the sequence numbers 1..N of its last event must all arrive
   (N is expected, a hole is lost), each (call, sequence) with one event_id (a repeat with the
   same event_id is an allowed at-least-once repeat, another event_id would be a duplicate),
   in order, ending with hangup and call_quality, with the events its outcome implies.

Numbers vary with what else runs on the machine: the report says the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
HOOK_PATH = "/hook"
TENANT = "bench"
TOKEN = "bench-token-0123456789"
ADMIN = "bench-admin-token-0123456789"
GATEWAY = "sofia/gateway/sim"
DIAL_TIMEOUT = 20
MACHINE = {"AM", "FX", "MD"}


# -- the outcome mix -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of callee: how often, how it answers, and the events it must produce."""

    code: str  # two digits of the number
    weight: float
    outcome: str
    audio: str | None
    rings_ms: tuple[int, ...]
    hangups_ms: tuple[int | None, ...] = (None,)
    cpa: str | None = None  # the first CPA result expected ("LV", "AM", "FX", ...)

    def events(self, cpa: bool) -> set[str]:
        expected = {"originate", "hangup", "call_quality"}
        if self.outcome in ("answer",):
            expected |= {"started", "ringing", "answered"}
            if cpa:
                expected |= {"cpa_setup", "cpa_detection"}
        elif self.outcome in ("no_answer", "reject"):
            expected |= {"started", "ringing"}
        elif self.outcome in ("busy", "unallocated"):
            expected |= {"started"}
        return expected


REALISTIC = [
    Kind("10", 30, "answer", "human", (2000, 4000, 6000, 9000), (8000, 15000, 25000), "LV"),
    Kind("20", 22, "answer", "machine_beep", (3000, 5000, 8000), (30000,), "AM"),
    Kind("21", 10, "answer", "machine_nobeep", (3000, 5000, 8000), (30000,), "AM"),
    Kind("30", 2, "answer", "fax", (1000, 2000), (20000,), "FX"),
    Kind("40", 3, "answer", "silence", (2000, 4000), (8000,)),
    Kind("50", 8, "busy", None, (300, 800)),
    Kind("60", 15, "no_answer", None, (0,)),
    Kind("70", 5, "unallocated", None, (200,)),
    Kind("80", 5, "reject", None, (4000, 8000)),
]
ANSWERED = [Kind("10", 100, "answer", "human", (1000, 2000, 3000), (None,), "LV")]


def scenario_file(kinds: list[Kind]) -> str:
    """
    One table per kind, ring time and call length: the number is 1555 + code + ring index +
    length index + a 3-digit counter.
    """
    tables = []
    for kind in kinds:
        for r, ring in enumerate(kind.rings_ms):
            for h, hangup in enumerate(kind.hangups_ms):
                lines = [
                    "[[scenario]]",
                    f'match = "^1555{kind.code}{r}{h}\\\\d{{3}}$"',
                    f"ring_ms = {ring}",
                    f'outcome = "{kind.outcome}"',
                ]
                if kind.audio:
                    lines.append(f'audio = "{kind.audio}"')
                if hangup is not None:
                    lines.append(f"hangup_after_ms = {hangup}")
                tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def pick_number(kinds: list[Kind], rng: random.Random, n: int) -> tuple[str, Kind]:
    kind = rng.choices(kinds, weights=[k.weight for k in kinds])[0]
    r = rng.randrange(len(kind.rings_ms))
    h = rng.randrange(len(kind.hangups_ms))
    return f"1555{kind.code}{r}{h}{n % 1000:03d}", kind


# -- the receiver (its own process) --------------------------------------------------------


def run_receiver(dump_path: str) -> None:
    """
    Answer every POST with 204, record (arrival, event), and tell the driver on stdout:
    ``A uuid`` answered, ``C uuid LV`` a CPA result, ``D uuid`` CPA done, ``H uuid`` hangup.
    ``GET /dump`` writes the records to C{dump_path} and answers their count.
    """
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import LoopingCall

    records: list[tuple[Any, ...]] = []
    notes: list[bytes] = []
    out = sys.stdout.buffer
    wall = time.time

    def record(body: bytes) -> None:
        now = wall()
        event = orjson.loads(body)
        name = event["event"]
        call = event.get("call_uuid")
        records.append(
            (
                now,
                call,
                event["sequence"],
                event["event_id"],
                name,
                event["timestamp"],
                event.get("ms_since_answer"),
                event.get("event_data"),
            )
        )
        if call is None:
            return
        if name == "answered":
            notes.append(b"A " + call.encode() + b"\n")
        elif name == "cpa_detection":
            notes.append(b"C " + call.encode() + b" " + str(event["event_data"]).encode() + b"\n")
        elif name == "cpa_done":
            notes.append(b"D " + call.encode() + b"\n")
        elif name == "hangup":
            notes.append(b"H " + call.encode() + b"\n")

    def flush() -> None:
        if notes:
            out.write(b"".join(notes))
            out.flush()
            notes.clear()

    def dump() -> bytes:
        with open(dump_path, "wb") as f:
            for r in records:
                f.write(orjson.dumps(r) + b"\n")
        return str(len(records)).encode()

    class Responder(Protocol):
        buffer = b""

        def dataReceived(self, data: bytes) -> None:  # noqa: N802
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buffer[:end].lower()
                length = 0
                start = head.find(b"content-length:")
                if start >= 0:
                    stop = head.find(b"\r\n", start)
                    length = int(head[start + 15 : stop if stop >= 0 else None])
                if len(self.buffer) < end + 4 + length:
                    return
                body = self.buffer[end + 4 : end + 4 + length]
                self.buffer = self.buffer[end + 4 + length :]
                if head.startswith(b"get /dump"):
                    flush()
                    reply = dump()
                    self.transport.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply)
                    )
                else:
                    record(body)
                    self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    port = reactor.listenTCP(0, Factory.forProtocol(Responder), interface="127.0.0.1", backlog=1024)
    out.write(b"port %d\n" % port.getHost().port)
    out.flush()
    LoopingCall(flush).start(0.02)
    reactor.run()


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scheduling(pid: int) -> tuple[float, float]:
    """
    The main thread's CPU seconds, and the seconds all threads spent runnable but waiting
    for a CPU (schedstat): how much the neighbours held the process back.
    """
    waited = 0.0
    main = 0.0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            ran, wait, _ = f.read().split()
        waited += int(wait) / 1e9
        if int(task) == pid:
            main = int(ran) / 1e9
    return main, waited


def memory_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak RSS) in KiB."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# -- the driver ----------------------------------------------------------------------------


@dataclass
class CallState:
    uuid: str
    kind: Kind
    started: float
    answered: bool = False
    detections: list[str] = field(default_factory=list)
    dropping: bool = False
    ended: bool = False


class Driver:
    """
    This process: dials, keeps the load, runs the request mix, samples the processes.
    """

    def __init__(self, args: argparse.Namespace, reactor: Any, base: str, hook: str) -> None:
        from twisted.web.client import Agent, HTTPConnectionPool

        self.args = args
        self.reactor = reactor
        self.base = base.encode()
        self.hook = hook
        self.kinds = ANSWERED if args.outcomes == "answered" else REALISTIC
        self.rng = random.Random(args.seed)
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 128
        self.agent = Agent(reactor, pool=pool)
        self.calls: dict[str, CallState] = {}
        self.live: set[str] = set()
        self.answered: list[str] = []  # live answered calls (lazy deletion)
        self.playing: list[str] = []
        self.early_ends: set[str] = set()
        self.pending_makecalls = 0
        self.dialed = 0
        self.refused: Counter[str] = Counter()
        self.latencies: list[tuple[float, str, float, int]] = []  # (wall, name, ms, code)
        self.samples: list[dict[str, Any]] = []
        self.phase = "ramp"
        self.ramp_started = 0.0
        self.hold_started: float | None = None
        self.hold_ended: float | None = None
        self.launch_budget = 0.0
        self.mix_budget = 0.0
        self.last_tick = 0.0
        self.loop_lag: list[float] = []
        self.drops = 0
        self.headers = {
            b"Authorization": [f"Bearer {TOKEN}".encode()],
            b"Content-Type": [b"application/json"],
        }

    # requests

    def request(
        self, name: str, body: dict[str, Any] | None, token: str = TOKEN, method: bytes = b"POST"
    ) -> Any:
        from twisted.web.client import readBody
        from twisted.web.http_headers import Headers

        from iradialer.webhooks.http import BytesProducer

        started = time.perf_counter()
        headers = Headers(
            {b"Authorization": [f"Bearer {token}".encode()], b"Content-Type": [b"application/json"]}
        )
        producer = BytesProducer(orjson.dumps(body)) if body is not None else None
        d = self.agent.request(method, self.base + b"/api/" + name.encode(), headers, producer)

        def read(response: Any) -> Any:
            return readBody(response).addCallback(lambda raw: (response.code, raw))

        def done(result: tuple[int, bytes]) -> tuple[int, Any]:
            code, raw = result
            ms = (time.perf_counter() - started) * 1000
            self.latencies.append((time.time(), name, ms, code))
            return code, orjson.loads(raw) if raw else None

        def failed(failure: Any) -> tuple[int, Any]:
            ms = (time.perf_counter() - started) * 1000
            self.latencies.append((time.time(), name, ms, 0))
            self.refused["transport:" + failure.type.__name__] += 1
            return 0, None

        return d.addCallback(read).addCallbacks(done, failed)

    def makecall(self) -> None:
        number, kind = pick_number(self.kinds, self.rng, self.dialed)
        self.dialed += 1
        self.pending_makecalls += 1
        body: dict[str, Any] = {
            "gateway": GATEWAY,
            "to": number,
            "from": "15559990000",
            "event_url": self.hook,
            "dial_timeout": DIAL_TIMEOUT,
        }
        if self.args.cpa:
            body.update(enable_cpa="yes", config_name="bench")

        def answered(result: tuple[int, Any]) -> None:
            self.pending_makecalls -= 1
            code, reply = result
            if code != 200:
                self.refused[f"makecall {code} {reply and reply.get('status_code')}"] += 1
                return
            uuid = reply["call_uuid"]
            call = CallState(uuid, kind, time.time())
            self.calls[uuid] = call
            if uuid in self.early_ends:
                call.ended = True
            else:
                self.live.add(uuid)

        self.request("makecall", body).addCallback(answered)

    def dropcall(self, uuid: str) -> None:
        call = self.calls.get(uuid)
        if call is None or call.ended or call.dropping:
            return
        call.dropping = True
        self.drops += 1
        self.request("dropcall", {"call_uuid": uuid})

    # what the receiver says

    def note(self, line: bytes) -> None:
        kind, _, rest = line.partition(b" ")
        uuid, _, data = rest.decode().partition(" ")
        call = self.calls.get(uuid)
        if kind == b"H":
            if call is None:
                self.early_ends.add(uuid)
                return
            call.ended = True
            self.live.discard(uuid)
        elif call is None:
            return
        elif kind == b"A":
            call.answered = True
            self.answered.append(uuid)
        elif kind == b"C":
            call.detections.append(data)
        elif kind == b"D":
            found = set(call.detections)
            if found & MACHINE and "LV" not in found:
                self.dropcall(uuid)

    # the load

    def live_count(self) -> int:
        return len(self.live) + self.pending_makecalls

    def tick(self) -> None:
        now = time.monotonic()
        if self.last_tick:
            self.loop_lag.append(max(0.0, now - self.last_tick - 0.01) * 1000)
        wall = time.time()
        # At a low rate calls end as fast as new ones start before --max-calls are live: the
        # ramp then ends at twice the time the rate would need, at whatever plateau it reached.
        plateau = wall - self.ramp_started >= 2 * self.args.max_calls / self.args.cps
        if self.phase == "ramp" and (self.live_count() >= self.args.max_calls or plateau):
            self.phase = "hold"
            self.hold_started = wall
            print(
                f"  {self.live_count()} calls live after {wall - self.ramp_started:.1f} s"
                f"{' (a plateau below --max-calls)' if plateau else ''};"
                f" holding for {self.args.hold:.0f} s",
                flush=True,
            )
        if self.phase == "hold" and wall - (self.hold_started or wall) >= self.args.hold:
            self.phase = "drain"
            self.hold_ended = wall
            print("  hold done; no more calls, waiting for every call to end", flush=True)
        elapsed = min(now - self.last_tick, 1.0) if self.last_tick else 0.01
        self.last_tick = now
        if self.phase in ("ramp", "hold"):
            self.launch_budget = min(self.launch_budget + self.args.cps * elapsed, self.args.cps)
            mixing = self.phase == "hold" and self.args.requests > 0
            if not mixing or self.args.outcomes != "answered":
                while self.launch_budget >= 1 and self.live_count() < self.args.max_calls:
                    self.launch_budget -= 1
                    self.makecall()
            if mixing:
                self.mix_budget += self.args.requests * elapsed
                while self.mix_budget >= 1:
                    self.mix_budget -= 1
                    self.mix_request()
        elif self.phase == "drain" and self.args.outcomes == "answered":
            # Callees who never hang up are hung up by the dialer, at the dialing rate.
            self.launch_budget = min(self.launch_budget + self.args.cps * elapsed, self.args.cps)
            for uuid in [u for u in self.live if not self.calls[u].dropping]:
                if self.launch_budget < 1:
                    break
                self.launch_budget -= 1
                self.dropcall(uuid)

    def random_live_answered(self) -> str | None:
        for _ in range(20):
            if not self.answered:
                return None
            i = self.rng.randrange(len(self.answered))
            uuid = self.answered[i]
            call = self.calls.get(uuid)
            if call is not None and not call.ended and not call.dropping:
                return uuid
            self.answered[i] = self.answered[-1]
            self.answered.pop()
        return None

    MIX = (
        ("getdetails", 25),
        ("playtext", 12),
        ("stopplay", 12),
        ("senddtmf", 15),
        ("status", 16),
        ("makecall", 10),
        ("dropcall", 10),
    )

    def mix_request(self) -> None:
        names = [n for n, _ in self.MIX]
        name = self.rng.choices(names, weights=[w for _, w in self.MIX])[0]
        if name == "makecall":
            self.makecall()
            return
        if name == "status":
            self.request("status", None, method=b"GET")
            return
        uuid = self.random_live_answered()
        if uuid is None:
            return
        if name == "dropcall":
            self.dropcall(uuid)
        elif name == "getdetails":
            self.request("getdetails", {"call_uuid": uuid})
        elif name == "senddtmf":
            self.request("senddtmf", {"call_uuid": uuid, "digits": "1"})
        elif name == "playtext":
            self.request("playtext", {"call_uuid": uuid, "text": "Thank you for holding."})
            self.playing.append(uuid)
        elif name == "stopplay":
            target = self.playing.pop() if self.playing else uuid
            call = self.calls.get(target)
            if call is not None and not call.ended and not call.dropping:
                self.request("stopplay", {"call_uuid": target})


def spawn(
    reactor: Any, protocol: Any, argv: list[str], log: Path | None, nice: int, cpus: Any = None
) -> Any:
    child_fds: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
    if log is not None:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        child_fds = {0: "w", 1: fd, 2: fd}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = reactor.spawnProcess(
        protocol, argv[0], argv, env=env, path=str(REPO), childFDs=child_fds
    )
    if log is not None:
        os.close(fd)
    if nice:
        os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    if cpus:
        os.sched_setaffinity(process.pid, cpus)
    return process


async def run(args: argparse.Namespace, reactor: Any, work: Path) -> dict[str, Any]:
    """
    The whole benchmark; whatever happens, no child process outlives it.
    """
    processes: list[tuple[str, Any, Any]] = []
    try:
        return await _run(args, reactor, work, processes)
    finally:
        for _, process, protocol in processes:
            if not protocol.ended.called:
                process.signalProcess("KILL")
                await protocol.ended


async def _run(
    args: argparse.Namespace, reactor: Any, work: Path, processes: list[tuple[str, Any, Any]]
) -> dict[str, Any]:
    from twisted.internet.defer import Deferred, ensureDeferred
    from twisted.internet.protocol import ProcessProtocol
    from twisted.internet.task import LoopingCall, deferLater

    class Lines(ProcessProtocol):
        def __init__(self, on_line: Any) -> None:
            self.buffer = b""
            self.on_line = on_line
            self.ended: Deferred[None] = Deferred()

        def outReceived(self, data: bytes) -> None:  # noqa: N802
            self.buffer += data
            *lines, self.buffer = self.buffer.split(b"\n")
            for line in lines:
                self.on_line(line)

        def processEnded(self, reason: Any) -> None:  # noqa: N802
            self.ended.callback(None)

    async def wait_until(check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await deferLater(reactor, 0.1)

    kinds = ANSWERED if args.outcomes == "answered" else REALISTIC
    (work / "scenarios.toml").write_text(scenario_file(kinds))
    (work / "sounds").mkdir(exist_ok=True)
    python = sys.executable

    # the receiver
    receiver_port: list[int] = []
    driver_ref: list[Driver] = []

    def receiver_line(line: bytes) -> None:
        if line.startswith(b"port "):
            receiver_port.append(int(line.split()[1]))
        elif driver_ref:
            driver_ref[0].note(line)

    dump = work / "events.jsonl"
    receiver = Lines(receiver_line)
    argv = [python, str(Path(__file__).resolve()), "--role", "receiver", "--dump", str(dump)]
    processes.append(
        ("receiver", spawn(reactor, receiver, argv, None, args.nice, args.others_cpus), receiver)
    )
    await wait_until(lambda: receiver_port, 30, "the receiver")
    hook = f"http://127.0.0.1:{receiver_port[0]}{HOOK_PATH}"

    # the simulator
    sim_port: list[int] = []

    def sim_line(line: bytes) -> None:
        text = line.decode(errors="replace")
        if "simulator listening on" in text and "port=" in text:
            sim_port.append(int(text.rsplit("port=", 1)[1].strip(")\n ")))

    sim = Lines(sim_line)
    argv = [
        python,
        "-m",
        "iradialer.sim",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--scenarios",
        str(work / "scenarios.toml"),
    ]
    processes.append(
        ("simulator", spawn(reactor, sim, argv, None, args.nice, args.others_cpus), sim)
    )
    await wait_until(lambda: sim_port, 30, "the simulator")

    # iradialer
    api_port = free_port()
    base = f"http://127.0.0.1:{api_port}"
    (work / "iradialer.toml").write_text(
        f'[api]\nlisten = "tcp:{api_port}:interface=127.0.0.1"\nadmin_token = "{ADMIN}"\n'
        "[freeswitch]\nsimulate = false\n"
        f'[[freeswitch.node]]\nname = "sim"\nhost = "127.0.0.1"\nport = {sim_port[0]}\n'
        'password = "ClueCon"\nmax_sessions = 100000\ncps = 10000\n'
        '[media]\nlisten = "127.0.0.1"\nport = 0\nfreeswitch_ports = "52000-55999"\n'
        f'files_dir = "{work / "sounds"}"\n'
        f'[store]\npath = "{work / "var" / "iradialer.sqlite"}"\n'
        f'[[tenant]]\nid = "{TENANT}"\ntoken = "{TOKEN}"\nlicenses = 100000\n'
        f'gateways = ["{GATEWAY}"]\nwebhook_secret = "bench-secret"\n'
        "allow_private_webhooks = true\n"
    )
    server = Lines(lambda line: None)
    twistd = str(Path(python).parent / "twistd")
    argv = [twistd, "--pidfile=", "-n", "iradialer", "--config", str(work / "iradialer.toml")]
    server_process = spawn(
        reactor, server, argv, work / "iradialer.log", args.nice, args.iradialer_cpus
    )
    processes.append(("iradialer", server_process, server))

    driver = Driver(args, reactor, base, hook)
    driver_ref.append(driver)
    ready: list[bool] = []

    async def check_ready() -> None:
        code, _ = await driver.request("license", None, method=b"GET")
        if code == 200:
            ready.append(True)

    deadline = time.monotonic() + 60
    while not ready:
        if time.monotonic() > deadline:
            raise RuntimeError("iradialer did not become ready; see " + str(work / "iradialer.log"))
        await check_ready()
        if not ready:
            await deferLater(reactor, 0.2)
    driver.latencies.clear()
    driver.refused.clear()

    code, reply = await driver.request(
        "setcpaparams",
        {
            "request_name": "set_cpa_params",
            "tenant_id": TENANT,
            "config_name": "bench",
            "analysis": "amd",
            "break_events": "LV,BP,FX,MD",
            "total_timeout": 12000,
        },
    )
    assert code == 200, reply
    driver.latencies.clear()

    pids = {name: process.pid for name, process, _ in processes}
    pids["driver"] = os.getpid()
    status: dict[str, Any] = {}

    async def poll_status() -> None:
        code, reply = await driver.request("status", None, token=ADMIN, method=b"GET")
        if code == 200:
            status.clear()
            status.update(reply)

    def sample() -> None:
        row: dict[str, Any] = {"t": time.time(), "phase": driver.phase, "live": len(driver.live)}
        for name, pid in pids.items():
            try:
                row[f"cpu_{name}"] = cpu_seconds(pid)
                row[f"rss_{name}"], row[f"hwm_{name}"] = memory_kib(pid)
            except OSError:
                pass
        try:
            row["main_iradialer"], row["wait_iradialer"] = scheduling(pids["iradialer"])
        except OSError:
            pass
        row["dialed"] = driver.dialed
        row["server_active"] = status.get("calls", {}).get("active")
        row["outbox"] = (status.get("webhooks") or {}).get("outbox_depth")
        row["cpa_streams"] = (status.get("cpa") or {}).get("cpa_streams")
        row["tick_ms"] = ((status.get("cpa") or {}).get("tick_ms") or {}).get("mean")
        driver.samples.append(row)
        ensureDeferred(poll_status())

    profiler = None
    print(
        f"  simulator pid {pids['simulator']} (ESL port {sim_port[0]}), "
        f"iradialer pid {pids['iradialer']} (API {base}), receiver pid {pids['receiver']};"
        f" work dir {work}",
        flush=True,
    )
    sampler = LoopingCall(sample)
    sampler.start(1.0)
    driver.ramp_started = time.time()
    ticker = LoopingCall(driver.tick)
    ticker.start(0.01)
    await wait_until(lambda: driver.phase == "hold", 600, "the ramp")
    if args.profile:
        profiler = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(pids["iradialer"]),
                "--duration",
                str(int(args.hold)),
                "--rate",
                "50",
                "--nonblocking",
                "--output",
                args.profile,
                "--format",
                "flamegraph" if args.profile.endswith(".svg") else "raw",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    await wait_until(lambda: driver.phase == "drain", args.hold + 600, "the hold")
    await wait_until(
        lambda: not driver.live and not driver.pending_makecalls,
        DIAL_TIMEOUT + 120,
        "every call to end",
    )
    ticker.stop()
    for _ in range(600):
        await poll_status()
        if (status.get("webhooks") or {}).get("outbox_depth") == 0:
            break
        await deferLater(reactor, 0.5)
    await deferLater(reactor, 1.0)
    sampler.stop()
    sample()
    final_status = dict(status)
    code, raw = await _get_raw(driver, f"http://127.0.0.1:{receiver_port[0]}/dump")
    if profiler is not None:
        profiler.wait(timeout=60)
    for name, process, protocol in processes:
        if name == "iradialer":
            process.signalProcess("TERM")
            await protocol.ended
    for name, process, protocol in processes:
        if name != "iradialer":
            process.signalProcess("TERM")
            await protocol.ended
    return analyse(args, driver, dump, final_status, work)


async def _get_raw(driver: Driver, url: str) -> tuple[int, bytes]:
    from twisted.web.client import readBody

    response = await driver.agent.request(b"GET", url.encode())
    return response.code, await readBody(response)


# -- the analysis --------------------------------------------------------------------------


def analyse(
    args: argparse.Namespace, driver: Driver, dump: Path, status: dict[str, Any], work: Path
) -> dict[str, Any]:
    records = [orjson.loads(line) for line in dump.read_bytes().splitlines()]
    hold_start = driver.hold_started or driver.ramp_started
    hold_end = driver.hold_ended or time.time()

    # API latency
    api = [(t, name, ms, code) for t, name, ms, code in driver.latencies]
    by_name: dict[str, list[float]] = defaultdict(list)
    codes: Counter[str] = Counter()
    for _, name, ms, code in api:
        by_name[name].append(ms)
        codes[f"{name} {code}"] += 1
    all_ms = [ms for _, _, ms, _ in api]
    hold_ms = [ms for t, _, ms, _ in api if hold_start <= t <= hold_end]

    # events
    per_call: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in records:
        if r[1] is not None:
            per_call[r[1]].append(r)
    webhook_ms = [(r[0] - epoch(r[5])) * 1000 for r in records]
    lateness: list[tuple[float, float, str]] = []
    expected = received = repeats = foreign_duplicates = order_violations = 0
    missing_terminal = missing_kinds = extra_hangups = 0
    missing_by_event: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    first_cpa: Counter[str] = Counter()
    for uuid, call in driver.calls.items():
        events = per_call.get(uuid, [])
        seen: dict[int, str] = {}
        last = 0
        for r in events:  # in arrival order
            sequence, event_id = r[2], r[3]
            if sequence in seen:
                if seen[sequence] == event_id:
                    repeats += 1
                else:
                    foreign_duplicates += 1
                continue
            seen[sequence] = event_id
            if sequence < last:
                order_violations += 1
            last = max(last, sequence)
        top = max(seen, default=0)
        expected += top
        received += len(seen)
        names = [r[4] for r in events]
        if "call_quality" not in names or "hangup" not in names:
            missing_terminal += 1
        extra_hangups += max(0, names.count("hangup") - 1)
        want = call.kind.events(args.cpa)
        if call.dropping and not call.detections:
            # Dropped by the driver before a CPA result reached it (the mix of --requests,
            # or the drain): the call may end before it answered or before CPA decided.
            want -= {"answered", "cpa_setup", "cpa_detection"}
        missing = want - set(names)
        if missing:
            missing_kinds += 1
            missing_by_event.update(missing)
        hangup = next((r for r in events if r[4] == "hangup"), None)
        outcomes[hangup[7] if hangup else "(none)"] += 1
        answered = next((r for r in events if r[4] == "answered"), None)
        detections = [r for r in events if r[4] == "cpa_detection"]
        if detections:
            first_cpa[f"{call.kind.audio}: {detections[0][7]}"] += 1
        if answered is not None:
            zero = epoch(answered[5])
            for r in detections:
                lateness.append((r[0], (r[0] - (zero + r[6] / 1000)) * 1000, r[7]))
    calls_without_events = sum(1 for uuid in driver.calls if uuid not in per_call)

    # CPS
    ramp_seconds = hold_start - driver.ramp_started
    dialed_in_ramp = sum(
        1 for t, n, _, c in api if n == "makecall" and c == 200 and t <= hold_start
    )
    dialed_in_hold = sum(
        1 for t, n, _, c in api if n == "makecall" and c == 200 and hold_start < t <= hold_end
    )

    # CPU and memory over the hold
    samples = driver.samples
    hold_samples = [s for s in samples if hold_start <= s["t"] <= hold_end]
    cpu: dict[str, float] = {}
    for name, key in [
        ("iradialer", "cpu_iradialer"),
        ("iradialer main thread", "main_iradialer"),
        ("iradialer waiting for a CPU", "wait_iradialer"),
        ("simulator", "cpu_simulator"),
        ("receiver", "cpu_receiver"),
        ("driver", "cpu_driver"),
    ]:
        usable = [s for s in hold_samples if key in s]
        if len(usable) >= 2:
            cpu[name] = (usable[-1][key] - usable[0][key]) / (usable[-1]["t"] - usable[0]["t"])
    peak_rss = {
        name: max((s.get(f"hwm_{name}", 0) for s in samples), default=0) / 1024
        for name in ("iradialer", "simulator", "receiver", "driver")
    }
    log_text = (work / "iradialer.log").read_text(errors="replace")
    result = {
        "parameters": vars(args),
        "load_average": os.getloadavg(),
        "calls": {
            "dialed": driver.dialed,
            "accepted": len(driver.calls),
            "refused": dict(driver.refused),
            "dropped_by_driver": driver.drops,
            "peak_live": max((s["live"] for s in samples), default=0),
            "ramp_seconds": ramp_seconds,
            "cps_ramp": dialed_in_ramp / ramp_seconds if ramp_seconds > 0 else float("nan"),
            "cps_hold": dialed_in_hold / (hold_end - hold_start),
            "hangup_reasons": dict(outcomes),
            "first_cpa_result": dict(first_cpa),
        },
        "api_ms": {
            "requests": len(all_ms),
            "requests_in_hold": len(hold_ms),
            "requests_per_second_hold": len(hold_ms) / (hold_end - hold_start),
            "p50": percentile(all_ms, 0.5),
            "p99": percentile(all_ms, 0.99),
            "max": max(all_ms, default=float("nan")),
            "hold_p50": percentile(hold_ms, 0.5),
            "hold_p99": percentile(hold_ms, 0.99),
            "by_endpoint": {
                name: {
                    "n": len(v),
                    "p50": percentile(v, 0.5),
                    "p99": percentile(v, 0.99),
                    "max": max(v),
                }
                for name, v in sorted(by_name.items())
            },
            "codes": dict(codes),
        },
        "webhook_ms": {
            "events": len(records),
            "p50": percentile(webhook_ms, 0.5),
            "p99": percentile(webhook_ms, 0.99),
            "max": max(webhook_ms, default=float("nan")),
        },
        "cpa_lateness_ms": {
            "detections": len(lateness),
            "p50": percentile([x for _, x, _ in lateness], 0.5),
            "p99": percentile([x for _, x, _ in lateness], 0.99),
            "max": max((x for _, x, _ in lateness), default=float("nan")),
            "by_result": {
                k: {"n": len(v), "p50": percentile(v, 0.5), "p99": percentile(v, 0.99)}
                for k, v in _group(lateness).items()
            },
        },
        "cpu_cores_hold": cpu,
        "peak_rss_mib": peak_rss,
        "events": {
            "expected": expected,
            "received": received,
            "lost": expected - received,
            "calls_without_events": calls_without_events,
            "calls_missing_hangup_or_call_quality": missing_terminal,
            "calls_missing_an_expected_event": missing_kinds,
            "missing_by_event": dict(missing_by_event),
            "repeats_same_event_id": repeats,
            "duplicates_other_event_id": foreign_duplicates,
            "second_hangups": extra_hangups,
            "order_violations": order_violations,
            "server_delivered": (status.get("webhooks") or {}).get("delivered"),
            "server_dead_letters": (status.get("webhooks") or {}).get("dead_letters"),
            "server_outbox_depth": (status.get("webhooks") or {}).get("outbox_depth"),
        },
        "driver_loop_lag_ms": {
            "p50": percentile(driver.loop_lag, 0.5),
            "p99": percentile(driver.loop_lag, 0.99),
        },
        "server_log": {
            "tracebacks": log_text.count("Traceback"),
            "unhandled": log_text.count("Unhandled"),
            "errors": sum(1 for line in log_text.splitlines() if "[-] " in line and "rror" in line),
        },
        "media": {
            k: (status.get("cpa") or {}).get(k)
            for k in (
                "packets",
                "receive_buffer_drops",
                "tick_ms",
                "frames_analysed",
                "engine_steps",
            )
        },
    }
    result["samples"] = samples
    if args.plot:
        plot(args.plot, driver, records, lateness, webhook_ms, result)
    return result


def _group(lateness: list[tuple[float, float, str]]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for _, ms, what in lateness:
        groups[str(what)].append(ms)
    return dict(groups)


def plot(
    path: str,
    driver: Driver,
    records: list[Any],
    lateness: list[tuple[float, float, str]],
    webhook_ms: list[float],
    result: dict[str, Any],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = driver.ramp_started
    samples = driver.samples
    seconds = [s["t"] - t0 for s in samples]

    def per_second(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
        buckets: dict[int, list[float]] = defaultdict(list)
        for t, v in points:
            if t >= t0:
                buckets[int(t - t0)].append(v)
        xs = sorted(buckets)
        return [x + 0.5 for x in xs], [percentile(buckets[x], 0.99) for x in xs]

    fig, (calls_ax, latency_ax, cpu_ax) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    calls_ax.plot(seconds, [s["live"] for s in samples], label="live calls (driver)")
    cps = [0.0] + [
        (b["dialed"] - a["dialed"]) / (b["t"] - a["t"]) for a, b in zip(samples, samples[1:])
    ]
    calls_ax.plot(seconds, [s.get("cpa_streams") or 0 for s in samples], label="CPA streams")
    calls_ax2 = calls_ax.twinx()
    calls_ax2.plot(seconds, cps, color="tab:green", alpha=0.6, label="makecalls/s")
    calls_ax2.set_ylabel("calls per second")
    calls_ax.set_ylabel("calls")
    calls_ax.legend(loc="upper left")
    calls_ax2.legend(loc="upper right")
    title = (
        f"iradialer load: {result['parameters']['cps']} cps to {result['parameters']['max_calls']}"
        f" calls, hold {result['parameters']['hold']:.0f} s"
    )
    calls_ax.set_title(title)
    for ax in (calls_ax, latency_ax, cpu_ax):
        if driver.hold_started:
            ax.axvspan(driver.hold_started - t0, (driver.hold_ended or t0) - t0, color="0.93")

    x, y = per_second([(t, ms) for t, _, ms, _ in driver.latencies])
    latency_ax.plot(x, y, label="API p99")
    x, y = per_second([(r[0], ms) for r, ms in zip(records, webhook_ms)])
    latency_ax.plot(x, y, label="webhook p99")
    x, y = per_second([(t, ms) for t, ms, _ in lateness])
    latency_ax.plot(x, y, label="CPA lateness p99")
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel("ms (p99 per second)")
    latency_ax.legend(loc="upper left")

    for name in ("iradialer", "simulator", "receiver", "driver"):
        key = f"cpu_{name}"
        pts = [s for s in samples if key in s]
        xs = [b["t"] - t0 for b in pts[1:]]
        ys = [100 * (b[key] - a[key]) / (b["t"] - a["t"]) for a, b in zip(pts, pts[1:])]
        cpu_ax.plot(xs, ys, label=f"{name} CPU %")
    cpu_ax.set_ylabel("% of one core")
    cpu_ax2 = cpu_ax.twinx()
    cpu_ax2.plot(
        seconds, [s.get("rss_iradialer", 0) / 1024 for s in samples], "k--", label="iradialer RSS"
    )
    cpu_ax2.set_ylabel("MiB")
    cpu_ax.legend(loc="upper left", fontsize="small")
    cpu_ax2.legend(loc="upper right", fontsize="small")
    cpu_ax.set_xlabel("seconds since the first call (grey: hold)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def report(result: dict[str, Any]) -> str:
    c, a, w, l_, e = (
        result["calls"],
        result["api_ms"],
        result["webhook_ms"],
        result["cpa_lateness_ms"],
        result["events"],
    )
    lines = [
        f"load average at the end: {' '.join(f'{x:.2f}' for x in result['load_average'])}",
        f"calls: {c['accepted']} accepted of {c['dialed']} dialed, peak {c['peak_live']} live; "
        f"ramp {c['ramp_seconds']:.1f} s at {c['cps_ramp']:.1f} cps, "
        f"hold at {c['cps_hold']:.1f} cps",
        f"refused: {c['refused'] or 'none'}",
        f"API: {a['requests']} requests ({a['requests_per_second_hold']:.0f}/s in the hold); "
        f"p50 {a['p50']:.1f} ms, p99 {a['p99']:.1f} ms, max {a['max']:.0f} ms "
        f"(hold p50 {a['hold_p50']:.1f}, p99 {a['hold_p99']:.1f})",
    ]
    for name, v in a["by_endpoint"].items():
        lines.append(
            f"  {name:<12} n={v['n']:<6} p50 {v['p50']:6.1f} ms  p99 {v['p99']:6.1f} ms  "
            f"max {v['max']:6.0f} ms"
        )
    lines += [
        f"webhooks: {w['events']} events; enqueue-to-delivered p50 {w['p50']:.1f} ms, "
        f"p99 {w['p99']:.1f} ms, max {w['max']:.0f} ms",
        f"CPA lateness: {l_['detections']} detections; p50 {l_['p50']:.1f} ms, "
        f"p99 {l_['p99']:.1f} ms, max {l_['max']:.0f} ms",
    ]
    for name, v in l_["by_result"].items():
        lines.append(f"  {name:<4} n={v['n']:<6} p50 {v['p50']:6.1f} ms  p99 {v['p99']:6.1f} ms")
    cpu = result["cpu_cores_hold"]
    lines.append("CPU over the hold (cores): " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    lines.append(
        "peak RSS (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in result["peak_rss_mib"].items())
    )
    lines.append(
        f"events: expected {e['expected']}, received {e['received']}, lost {e['lost']}; "
        f"repeats (same event_id) {e['repeats_same_event_id']}, duplicates with another "
        f"event_id {e['duplicates_other_event_id']}, second hangups {e['second_hangups']}, "
        f"order violations {e['order_violations']}"
    )
    lines.append(
        f"  calls without any event {e['calls_without_events']}, without hangup+call_quality "
        f"{e['calls_missing_hangup_or_call_quality']}, missing an expected event "
        f"{e['calls_missing_an_expected_event']} {e['missing_by_event'] or ''}"
    )
    lines.append(
        f"  server: delivered {e['server_delivered']}, dead letters {e['server_dead_letters']}, "
        f"outbox at the end {e['server_outbox_depth']}"
    )
    lines.append(f"hangup reasons: {c['hangup_reasons']}")
    lines.append(f"first CPA result by callee: {c['first_cpa_result']}")
    lines.append(
        f"driver loop lag p50 {result['driver_loop_lag_ms']['p50']:.1f} ms, "
        f"p99 {result['driver_loop_lag_ms']['p99']:.1f} ms; server log: {result['server_log']}"
    )
    lines.append(f"media: {result['media']}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--role", choices=["driver", "receiver"], default="driver")
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    parser.add_argument("--cps", type=float, default=100.0, help="new calls per second")
    parser.add_argument("--max-calls", type=int, default=1000, help="live calls to ramp to")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds at --max-calls")
    parser.add_argument("--outcomes", choices=["realistic", "answered"], default="realistic")
    parser.add_argument("--no-cpa", dest="cpa", action="store_false", help="calls without CPA")
    parser.add_argument(
        "--requests", type=float, default=0.0, help="mixed API requests per second in the hold"
    )
    parser.add_argument("--plot", help="write a PNG of calls and latency over time")
    parser.add_argument("--json", help="write every figure as JSON")
    parser.add_argument(
        "--profile",
        help="py-spy profile of iradialer in the hold (.svg: flame graph; else collapsed stacks)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of every process of the benchmark (as root it may be < 0, to put the"
        " benchmark ahead of other work on a shared machine)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="iradialer alone on the first CPU, everything else on the others: as if"
        " FreeSWITCH, the receiver and the dialer ran on machines of their own",
    )
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.role == "receiver":
        run_receiver(args.dump)
        return 0

    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    # readBody warns about Agent's own transports; nothing to act on here.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    args.iradialer_cpus = args.others_cpus = None
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            parser.error("--pin needs at least two CPUs")
        args.iradialer_cpus, args.others_cpus = {cpus[0]}, set(cpus[1:])
        os.sched_setaffinity(0, args.others_cpus)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="iradialer-bench-"))
    outcome: dict[str, Any] = {}

    def finished(result: Any) -> None:
        outcome["result"] = result
        reactor.stop()

    def failed(failure: Any) -> None:
        outcome["failure"] = failure
        reactor.stop()

    def start() -> None:
        ensureDeferred(run(args, reactor, work)).addCallbacks(finished, failed)

    print(
        f"bench: {args.cps:g} cps to {args.max_calls} calls, hold {args.hold:g} s, "
        f"{args.outcomes} outcomes, CPA {'on' if args.cpa else 'off'}, "
        f"{args.requests:g} mixed requests/s"
        f"{', iradialer pinned to a CPU of its own' if args.pin else ''}",
        flush=True,
    )
    reactor.callWhenRunning(start)
    signal.signal(signal.SIGINT, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.run()
    if "failure" in outcome:
        print(outcome["failure"].getTraceback(), file=sys.stderr)
        print(f"work directory kept: {work}")
        return 1
    result = outcome["result"]
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    log_problems = sum(result["server_log"].values())
    if log_problems:
        print(f"iradialer logged {log_problems} tracebacks or errors: see {work}/iradialer.log")
    if not args.keep and not log_problems:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    else:
        print(f"work directory: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
