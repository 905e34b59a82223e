"""
A webhook receiver on a real socket for end-to-end tests: records what arrives and answers
according to a policy, and fires Deferreds when conditions are met.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request


@dataclass
class Arrival:
    event: dict[str, Any]
    code: int | None


class RecordingReceiver(Resource):
    """
    C{policy(arrival_number)} gives the status for the n-th POST (from 0), or C{None} to
    leave it unanswered.
    """

    isLeaf = True

    def __init__(self, policy: Callable[[int], int | None]) -> None:
        super().__init__()
        self.policy = policy
        self.arrivals: list[Arrival] = []
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def render_POST(self, request: Request) -> Any:
        arrival = Arrival(json.loads(request.content.read()), None)
        code = self.policy(len(self.arrivals))
        self.arrivals.append(arrival)
        arrival.code = code
        self._check()
        if code is None:
            return NOT_DONE_YET
        request.setResponseCode(code)
        return b""

    def when(self, condition: Callable[[], bool]) -> Deferred[None]:
        """
        Fire once C{condition()} holds (checked on every arrival).
        """
        d: Deferred[None] = Deferred()
        self._waiters.append((condition, d))
        self._check()
        return d

    def _check(self) -> None:
        for waiter in list(self._waiters):
            condition, d = waiter
            if condition():
                self._waiters.remove(waiter)
                d.callback(None)

    def accepted(self) -> list[dict[str, Any]]:
        return [a.event for a in self.arrivals if a.code is not None and 200 <= a.code < 300]

    def accepted_ids(self) -> set[str]:
        return {e["event_id"] for e in self.accepted()}

    def per_call(self, accepted_only: bool = True) -> dict[str, list[int]]:
        events = self.accepted() if accepted_only else [a.event for a in self.arrivals]
        calls: dict[str, list[int]] = defaultdict(list)
        for event in events:
            calls[event["call_uuid"]].append(event["sequence"])
        return dict(calls)


def collapse_repeats(sequence: list[int]) -> list[int]:
    """
    Drop immediate repeats: at-least-once delivery may hand the same event over twice in a
    row (when the 2xx was sent but the sender died before recording it), never out of order.
    """
    return [s for i, s in enumerate(sequence) if i == 0 or sequence[i - 1] != s]
