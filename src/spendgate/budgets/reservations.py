"""Learned output reservations, wired into the request path: an immutable table of what
each model (and project) writes lately, rebuilt from the ledger off the request path and
swapped whole, so a request pays one or two dict lookups (bench/bench_reservation.py).

The arithmetic (the percentile, its fallbacks, what learned mode can cost) is
``output_model.py``; this module feeds it samples and keeps its answer at hand.

The ledger records the model the provider *reported* (often a dated snapshot,
``gpt-4o-2024-08-06``) while a request names the alias (``gpt-4o``): samples and lookups
both go by the model's family, its name without a trailing snapshot date, so the two meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from spendgate.budgets.estimate import max_output_tokens
from spendgate.budgets.output_model import LEARNED, STRICT, OutputModelParams, reservation_table

log = logging.getLogger("spendgate.budgets")

RESERVATION_MODES = (STRICT, LEARNED)
# Samples per (model, project): the latest 1,000 are five times the 200 the percentile needs,
# recent enough to follow a prompt change, and bound what a refresh reads.
SAMPLES_PER_GROUP = 1000
# Older samples describe prompts that may be gone, and the window bounds the scan (ts index):
# on a SQLite ledger of 200,000 events a month, reading 30 days took 3.1 s, 7 days 0.64 s
# (bench/bench_reservation.py --ledger-events). A project with under 200 requests a week
# falls back to its model's samples across projects.
SAMPLE_LOOKBACK = timedelta(days=7)
# A percentile of hundreds of samples moves slowly: every five minutes is plenty, and keeps
# the read above to a fraction of a percent of a core.
REFRESH_INTERVAL_S = 300.0

# A trailing snapshot date: -2024-08-06 (OpenAI) or -20241022 (Anthropic).
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")

Samples = Mapping[tuple[str, str | None], Sequence[int]]


def model_family(model: str) -> str:
    """The model's name without a trailing snapshot date (pure)."""
    return _SNAPSHOT.sub("", model)


@dataclass(frozen=True, slots=True)
class ReservationTable:
    """Learned output tokens per answer by (model family, project), and by (family, None)
    across projects. Strict mode, or an empty table, learns nothing."""

    mode: str = STRICT
    learned: Mapping[tuple[str, str | None], int] = field(default_factory=lambda: MappingProxyType({}))

    def output_tokens(self, model: str, project: str | None) -> int | None:
        """What a request without an output cap reserves per answer; None: the strict bound."""
        if self.mode != LEARNED or not self.learned:
            return None
        learned = self.learned
        found = learned.get((model, project))
        if found is None:
            found = learned.get((model, None))
        if found is None:  # a dated model name: try its family (rare: requests name aliases)
            family = model_family(model)
            if family != model:
                found = learned.get((family, project), learned.get((family, None)))
        return found


def build_table(samples: Samples, params: OutputModelParams, mode: str = LEARNED) -> ReservationTable:
    """The table for ``samples`` (output tokens by (model, project), pure): each model's
    learned value capped at its strict bound (its maximum output)."""
    if mode != LEARNED:
        return ReservationTable(mode)
    by_family: dict[tuple[str, str | None], list[int]] = {}
    for (model, project), counts in samples.items():
        by_family.setdefault((model_family(model), project), []).extend(counts)
    strict = {model: max_output_tokens(model, {}) for model, _ in by_family}
    return ReservationTable(mode, MappingProxyType(reservation_table(by_family, strict, params)))


class LearnedReservations:
    """The current table, refreshed every ``interval`` seconds from ``load_samples`` (run in
    a worker thread: it reads the ledger). ``table`` is read by the request path."""

    def __init__(
        self,
        load_samples: Callable[[datetime, int], Samples],
        clock: Callable[[], datetime],
        *,
        mode: str = STRICT,
        params: OutputModelParams | None = None,
        interval: float = REFRESH_INTERVAL_S,
    ) -> None:
        if mode not in RESERVATION_MODES:
            raise ValueError(f"reservation must be one of {', '.join(RESERVATION_MODES)}, got {mode!r}")
        self.mode = mode
        self.params = params or OutputModelParams()
        self.table = ReservationTable(mode)
        self._load = load_samples
        self._clock = clock
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> ReservationTable:
        if self.mode != LEARNED:
            return self.table
        samples = await asyncio.to_thread(self._load, self._clock() - SAMPLE_LOOKBACK, SAMPLES_PER_GROUP)
        # One assignment: a request sees the old table or the new one, never a mix.
        self.table = build_table(samples, self.params, self.mode)
        return self.table

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                # The previous table stays in force; strict until a first refresh succeeds.
                log.exception("could not refresh the learned output reservations")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self.mode == LEARNED and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever(), name="spendgate-reservations")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
