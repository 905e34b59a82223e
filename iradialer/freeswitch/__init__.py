"""
FreeSWITCH nodes: connections, health, call ownership, node choice (see C{docs/freeswitch.md}).
"""

from iradialer.freeswitch.node import Node, NodeDown
from iradialer.freeswitch.pool import (
    EVENTS,
    FreeSwitchListener,
    NodePool,
    NoNodeAvailable,
)

__all__ = [
    "EVENTS",
    "FreeSwitchListener",
    "Node",
    "NodeDown",
    "NodePool",
    "NoNodeAvailable",
]
