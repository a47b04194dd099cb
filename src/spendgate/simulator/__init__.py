"""A built-in simulated model provider: a fast, deterministic fake of the OpenAI and Anthropic APIs.

Used by ``spendgate demo`` as the offline provider, by the tests as the upstream behind the
gateway, and by the benchmarks as a static upstream. Requests steer it with a
``[[sim key=value ...]]`` directive anywhere in their text (see :mod:`.plan` for the keys).
"""

from spendgate.simulator.app import SimulatorApp, create_simulator_app
from spendgate.simulator.directives import parse_directives
from spendgate.simulator.log import RequestRecord, SimulatorLog
from spendgate.simulator.plan import DirectiveError
from spendgate.simulator.server import RunningServer, serve_in_thread

__all__ = [
    "DirectiveError",
    "RequestRecord",
    "RunningServer",
    "SimulatorApp",
    "SimulatorLog",
    "create_simulator_app",
    "parse_directives",
    "serve_in_thread",
]
