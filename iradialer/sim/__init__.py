"""
The built-in FreeSWITCH simulator: an Event Socket server and simulated callees that behave
like FreeSWITCH on the wire (see docs/simulator.md).

C{make_simulator_service} is what the server composition starts; L{Simulator} is the engine
tests can drive and inspect in-process.
"""

from iradialer.sim.server import EventSocketFactory, make_simulator_service
from iradialer.sim.simulator import Simulator

__all__ = ["EventSocketFactory", "Simulator", "make_simulator_service"]
