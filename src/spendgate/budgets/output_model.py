"""Learned output reservations: reserve what a model (and project) usually writes, not the
most it could (pure; ``reservations.py`` feeds it the ledger's samples and keeps its table
for the request path, ``reservation = "learned"``).

Today a request without ``max_tokens`` reserves the model's whole output: gpt-4o's 16,384
tokens at $10/MTok hold $0.16 per request, so a $2 budget refuses its 13th concurrent
request while nearly all of it remains. In *learned* mode such a request reserves the
``percentile`` (p99) of the output tokens that model wrote for that project lately
(falling back to the model across projects, then to the strict bound), capped at the
strict bound. A request that sets ``max_tokens`` still reserves exactly that: it is a
real bound, learned mode only replaces the guess. Strict stays the default.

**What learned mode can cost.** A reservation is what the gate counts until the request
settles; a request that writes more than it reserved settles above it. A budget admits
requests while spent + reserved <= limit, so with C requests in flight, each allowed to
write up to ``strict`` tokens but reserving only ``learned``:

    worst-case overspend = C x (strict - learned) x output price per token

(:func:`worst_case_overspend`), and it needs every one of them to be a p99 outlier that
runs to the model's maximum. Its expectation is far smaller: C x E[(X - learned)+] x price,
the mean excess of the sample over the reservation (:func:`expected_overspend`). Strict
mode's worst case is zero.

**Why p99 and 200 samples.** With n past samples sorted, reserving the k-th smallest with
k = ceil(q (n + 1)) makes the chance that the next request writes more at most 1 - q
whatever the distribution (the order statistic X_(k) of n exchangeable draws is exceeded
by a new one with probability (n + 1 - k) / (n + 1)). At q = 0.99 that needs n >= 99; 200
leaves two samples above the reservation, so one freak answer does not set it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

STRICT = "strict"
LEARNED = "learned"


@dataclass(frozen=True, slots=True)
class OutputModelParams:
    percentile: Decimal = Decimal("0.99")
    min_samples: int = 200

    def __post_init__(self) -> None:
        if not 0 < self.percentile < 1 or self.min_samples < 1:
            raise ValueError("percentile must be in (0, 1) and min_samples >= 1")


def learned_tokens(samples: Sequence[int], strict: int, params: OutputModelParams) -> int | None:
    """The ``percentile`` of ``samples`` (output tokens of past requests) by the
    distribution-free order statistic, capped at ``strict``; None below ``min_samples``."""
    if len(samples) < params.min_samples:
        return None
    ordered = sorted(samples)
    rank = min(math.ceil(params.percentile * (len(ordered) + 1)), len(ordered))
    return min(ordered[rank - 1], strict)


def reservation_table(
    samples: Mapping[tuple[str, str | None], Sequence[int]],
    strict: Mapping[str, int],
    params: OutputModelParams,
) -> dict[tuple[str, str | None], int]:
    """Learned reservations by (model, project), and by (model, None) across projects.

    ``samples`` maps (model, project) to recent output-token counts (project None: no
    project); ``strict`` maps each model to its strict bound (its maximum output)."""
    table: dict[tuple[str, str | None], int] = {}
    pooled: dict[str, list[int]] = {}
    for (model, project), counts in samples.items():
        pooled.setdefault(model, []).extend(counts)
        learned = learned_tokens(counts, strict[model], params)
        if learned is not None and project is not None:
            table[model, project] = learned
    for model, counts in pooled.items():
        learned = learned_tokens(counts, strict[model], params)
        if learned is not None:
            table[model, None] = learned
    return table


def output_reservation(
    table: Mapping[tuple[str, str | None], int],
    model: str,
    project: str | None,
    strict: int,
    *,
    request_cap: int | None = None,
    mode: str = STRICT,
) -> int:
    """Output tokens to reserve: the request's own cap when it sets one; else in learned
    mode the project's learned value, then the model's, then ``strict``; in strict mode
    ``strict``."""
    if request_cap is not None:
        return request_cap
    if mode == LEARNED:
        learned = table.get((model, project), table.get((model, None)))
        if learned is not None:
            return min(learned, strict)
    return strict


def worst_case_overspend(concurrent: int, strict: int, reserved: int, output_usd_per_token: Decimal) -> Decimal:
    """The most a budget can end above its limit: ``concurrent`` admitted requests each
    writing ``strict`` tokens having reserved ``reserved``."""
    return concurrent * max(strict - reserved, 0) * output_usd_per_token


def expected_overspend(
    samples: Sequence[int], concurrent: int, reserved: int, output_usd_per_token: Decimal
) -> Decimal:
    """The mean overspend of ``concurrent`` requests drawn like ``samples``: each adds its
    excess over the reservation, zero when it stays under."""
    if not samples:
        return Decimal(0)
    excess = sum(max(count - reserved, 0) for count in samples)
    return concurrent * Decimal(excess) / len(samples) * output_usd_per_token
