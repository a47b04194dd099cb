"""A built-in simulated model provider: a fast, deterministic fake of the OpenAI and Anthropic APIs.

Used by ``spendgate demo`` as the offline provider, by the tests as the upstream behind the
gateway, and by the benchmarks as a static upstream. Requests steer it with the first
``[[sim key=value ...]]`` directive anywhere in their raw body:

- ``input``, ``cached``, ``cache_write``, ``cache_write_1h``, ``output``, ``reasoning``: token
  counts, each in the provider's own convention (see :mod:`.plan`); any 64-bit integer, negative
  or absurd ones included, as a misbehaving upstream might report;
- ``model``, ``text``: the model name echoed and the word the reply repeats;
- ``service_tier``: the tier the answer reports (``none``: no tier in the answer); by default
  OpenAI echoes the request's (``auto`` and no tier -> ``default``, ``fast`` -> ``priority``)
  and Anthropic reports ``standard``;
- ``status``: answer with that HTTP error; ``no_usage``: report no usage;
- ``chunks``, ``break_after``, ``delay_ms``, ``chunk_delay_ms``: stream shape, failure and pacing;
- ``end_after``: end the stream cleanly after that many deltas, without its final events;
- ``long_delta``: one more text delta of that many characters (one SSE line of that size).

Unknown keys and malformed values are answered with a 400, so typos in tests are loud.

It also serves the providers' admin usage and cost reports (:mod:`.admin_api`) from a dataset
(:mod:`.admin_dataset`) that can be built from what it served.
"""

from spendgate.simulator.admin_api import AdminApi, AdminApiOptions, create_admin_api_app
from spendgate.simulator.admin_dataset import AdminDataset, CostRecord, UsageRecord, costs_from_usage, usage_from_log
from spendgate.simulator.app import SimulatorApp, create_simulator_app
from spendgate.simulator.directives import parse_directives
from spendgate.simulator.log import RequestRecord, SimulatorLog
from spendgate.simulator.plan import DirectiveError
from spendgate.simulator.server import RunningServer, serve_in_thread

__all__ = [
    "AdminApi",
    "AdminApiOptions",
    "AdminDataset",
    "CostRecord",
    "DirectiveError",
    "RequestRecord",
    "RunningServer",
    "SimulatorApp",
    "SimulatorLog",
    "UsageRecord",
    "costs_from_usage",
    "create_admin_api_app",
    "create_simulator_app",
    "parse_directives",
    "serve_in_thread",
    "usage_from_log",
]
