"""
What the operations code costs per call and per status request, measured in one run.

    .venv/bin/python scripts/bench_operations.py

Prints the time of: one pacing admission, one CallRecorder record (with Prometheus counters),
one admin status snapshot and its JSON size with 50 tenants and a full hour of history, one
tenant snapshot, and one /metrics rendering.  Numbers vary with the machine and its load; the
ratios between them are what to compare across changes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from prometheus_client.exposition import generate_latest
from twisted.internet.task import Clock

from iradialer.config import parse
from iradialer.domain.pacing import Pacer
from iradialer.domain.tenants import ADMIN, LicenseLedger, Principal, TenantDirectory
from iradialer.metrics import Metrics
from iradialer.status import CallRecorder, StatusBoard

TENANTS = 50
NOW = 1_800_000_000.0


def configuration():
    tenants = "".join(
        f'[[tenant]]\nid = "t{i}"\ntoken = "token-{i:04d}"\nlicenses = 100\ncps = 1000000\n'
        f'gateways = ["sofia/gateway/g{i % 5}"]\nwebhook_secret = "s"\n'
        for i in range(TENANTS)
    )
    gateways = "".join(
        f'[[gateway]]\nname = "sofia/gateway/g{i}"\ncps = 1000000\nmax_calls = 1000000\n'
        for i in range(5)
    )
    text = '[api]\nadmin_token = "admin-token-1"\n[freeswitch]\nsimulate = true\n'
    return parse(text + tenants + gateways, "bench.toml", Path("/tmp"))


def per_call(label: str, count: int, run) -> None:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"{label:<58} {elapsed / count * 1e6:10.1f} us")


def main() -> None:
    config = configuration()
    directory = TenantDirectory(config.tenants, config.api.admin_token)
    ledger = LicenseLedger(directory)
    metrics = Metrics()
    recorder = CallRecorder(metrics)
    clock = Clock()
    clock.advance(NOW)
    board = StatusBoard(
        directory=directory,
        ledger=ledger,
        clock=clock,
        current_config=lambda: config,
        recorder=recorder,
    )
    pacer = Pacer(lambda: config)
    board.add_source("pacing", pacer.status, scope="tenant")

    n = 100_000

    def admit():
        for i in range(n):
            pacer.admit(f"t{i % TENANTS}", f"sofia/gateway/g{i % 5}", NOW + i * 1e-3)

    per_call("Pacer.admit (tenant + gateway buckets, cap)", n, admit)

    events = 0

    def record():
        nonlocal events
        for minute in range(60):
            for i in range(500):
                tenant, at = f"t{i % TENANTS}", NOW - minute * 60 + i * 0.1
                recorder.record_call_started(tenant, at)
                recorder.record_call_answered(tenant, at)
                recorder.record_cpa(tenant, "LV" if i % 3 else "AM", 1500.0, at)
                recorder.record_call_ended(tenant, "NORMAL_CLEARING", at)
                events += 4

    per_call("CallRecorder.record_* (history + metrics), per event", 60 * 500 * 4, record)

    rounds = 50
    snapshot = {}

    def admin_status():
        nonlocal snapshot
        for _ in range(rounds):
            snapshot = board.snapshot(ADMIN)

    per_call(f"StatusBoard.snapshot, admin, {TENANTS} tenants, 1 h history", rounds, admin_status)
    body = json.dumps(snapshot, separators=(",", ":"))
    print(f"{'  its JSON':<58} {len(body) / 1024:10.1f} KiB")
    tenant = Principal(config.tenants[0])
    per_call(
        "StatusBoard.snapshot, one tenant",
        rounds,
        lambda: [board.snapshot(tenant) for _ in range(rounds)],
    )
    metrics.set_licenses(board.license_figures())
    exposition = generate_latest(metrics.registry)
    per_call(
        "/metrics rendering (generate_latest)",
        rounds,
        lambda: [generate_latest(metrics.registry) for _ in range(rounds)],
    )
    print(f"{'  its size':<58} {len(exposition) / 1024:10.1f} KiB")


if __name__ == "__main__":
    main()
