"""Realistic synthetic usage events for the ledger benchmarks (deterministic for a seed).

An organisation of 12 teams (each its own cost centre) owning 36 projects; each project has a
production key and a staging key, 2-4 features and 2-4 of 12 models (OpenAI, Anthropic,
Google, Mistral), used with skewed weights. Half the projects serve end customers: each of
those sees 40-80 of 400 customers (skewed: a few big customers make most of the traffic); the
other half carry no customer. Traffic follows office hours and weekdays. Tokens are log-normal;
a third of prompts hit the cache; reasoning models produce reasoning tokens. About 1% of
events are unpriced, 2% estimated (`incomplete`) and 1.5% errors; a third carry tags
(`workflow`, plus a high-cardinality `ticket`); requests come in traces of 1-4 calls.

Costs are exact Decimals computed from integer pico-dollar rates, as the gateway's fast
pricing path does.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.ledger.events import UsageEvent

# model -> (provider, input, cached input, output) in USD per million tokens
MODELS = {
    "gpt-4o": ("openai", "2.5", "1.25", "10"),
    "gpt-4o-mini": ("openai", "0.15", "0.075", "0.6"),
    "gpt-4.1": ("openai", "2", "0.5", "8"),
    "gpt-4.1-mini": ("openai", "0.4", "0.1", "1.6"),
    "o3-mini": ("openai", "1.1", "0.55", "4.4"),
    "o4-mini": ("openai", "1.1", "0.275", "4.4"),
    "claude-sonnet-4-5": ("anthropic", "3", "0.3", "15"),
    "claude-haiku-4-5": ("anthropic", "1", "0.1", "5"),
    "claude-opus-4-1": ("anthropic", "15", "1.5", "75"),
    "gemini-2.5-flash": ("google", "0.3", "0.075", "2.5"),
    "gemini-2.5-pro": ("google", "1.25", "0.3125", "10"),
    "mistral-large": ("mistral", "2", "2", "6"),
}
REASONING = {"o3-mini", "o4-mini", "gemini-2.5-pro"}
FEATURES = (
    "chat",
    "search",
    "summarize",
    "classify",
    "extract",
    "translate",
    "agent",
    "autocomplete",
    "rerank",
    "moderation",
    "draft",
    "qa",
)
ENDPOINTS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
_PICO = 10**12  # rates kept as integer pico-dollars per token


@dataclass(frozen=True)
class Project:
    name: str
    team: str
    cost_center: str
    keys: tuple[tuple[str, str], ...]  # (key name, environment): production 90%, staging 10%
    features: tuple[str, ...]
    feature_cum: tuple[float, ...]
    models: tuple[str, ...]
    model_cum: tuple[float, ...]
    customers: tuple[str, ...]
    customer_cum: tuple[float, ...]


def _cum(weights: list[float]) -> tuple[float, ...]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return tuple(out)


def build_org(rng: random.Random) -> tuple[list[Project], list[float]]:
    customers = [f"cust-{i:04d}" for i in range(400)]
    projects = []
    for t in range(12):
        team = f"team-{t:02d}"
        for p in range(3):
            name = f"{team}-proj-{p}"
            keys = ((f"{name}-prod", "production"), (f"{name}-staging", "staging"))
            features = tuple(rng.sample(FEATURES, rng.randint(2, 4)))
            models = tuple(rng.sample(sorted(MODELS), rng.randint(2, 4)))
            serving = (t * 3 + p) % 2 == 0
            mine = tuple(rng.sample(customers, rng.randint(40, 80))) if serving else ()
            projects.append(
                Project(
                    name=name,
                    team=team,
                    cost_center=f"cc-{100 + t}",
                    keys=keys,
                    features=features,
                    feature_cum=_cum([1 / (i + 1) for i in range(len(features))]),
                    models=models,
                    model_cum=_cum([1 / (i + 1) ** 1.3 for i in range(len(models))]),
                    customers=mine,
                    customer_cum=_cum([1 / (i + 1) ** 1.1 for i in range(len(mine))]),
                )
            )
    # Project traffic is skewed too: a few projects make most of the requests.
    weights = [1 / (i + 1) ** 0.8 for i in range(len(projects))]
    rng.shuffle(weights)
    return projects, weights


# Relative traffic by UTC hour (office hours in Europe and the Americas) and by weekday.
_HOURLY = [0.3, 0.25, 0.2, 0.2, 0.25, 0.35, 0.5, 0.7, 0.9, 1.0, 1.0, 0.95, 0.9, 1.0, 1.1, 1.15, 1.1, 1.0, 0.9]
_HOURLY += [0.8, 0.7, 0.6, 0.5, 0.4]
_WEEKDAY = [1.0, 1.05, 1.05, 1.0, 0.9, 0.35, 0.3]


def hour_weights(start: datetime, hours: int) -> list[float]:
    times = [start + timedelta(hours=h) for h in range(hours)]
    return [_HOURLY[t.hour] * _WEEKDAY[t.weekday()] for t in times]


class Synthetic:
    """``batches(n, size)`` yields lists of events in time order, like a gateway's writer."""

    def __init__(self, start: datetime, days: int, seed: int = 7, tiers: bool = True) -> None:
        self.rng = random.Random(seed)
        # Tiers from a generator of their own: the other fields stay what they were before tiers.
        # Each event's drawn independently: the most rollup rows tiers can make (the worst case).
        self.tier_rng = random.Random(seed + 1) if tiers else None
        self.start = start.astimezone(UTC)
        self.days = days
        self.projects, self.project_weights = build_org(self.rng)
        self.project_cum = _cum(self.project_weights)
        self.rates = {m: tuple(int(Decimal(r) * _PICO // 10**6) for r in rates) for m, (_, *rates) in MODELS.items()}
        self.rate_text = {m: {"input": r[1], "cached_input": r[2], "output": r[3]} for m, r in MODELS.items()}

    def batches(self, n: int, size: int) -> Iterator[list[UsageEvent]]:
        rng = self.rng
        hours = self.days * 24
        weights = hour_weights(self.start, hours)
        total = sum(weights)
        # Events per hour, proportional to the traffic shape; the remainder goes to the busiest hours.
        per_hour = [int(n * w / total) for w in weights]
        short = n - sum(per_hour)
        for h in sorted(range(hours), key=lambda i: -weights[i])[:short]:
            per_hour[h] += 1
        batch: list[UsageEvent] = []
        trace: str | None = None
        trace_left = 0
        for h, count in enumerate(per_hour):
            base = self.start.timestamp() + h * 3600
            offsets = sorted(rng.random() * 3600 for _ in range(count))
            for off in offsets:
                ts = datetime.fromtimestamp(round(base + off, 6), UTC)
                if trace_left <= 0:
                    trace, trace_left = f"{rng.getrandbits(64):016x}", rng.choice((1, 1, 1, 2, 3, 4))
                trace_left -= 1
                batch.append(self._event(ts, trace))
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _event(self, ts: datetime, trace: str | None) -> UsageEvent:
        rng = self.rng
        project = self.projects[_pick(rng, self.project_cum)]
        key, environment = project.keys[0 if rng.random() < 0.9 else 1]
        feature = project.features[_pick(rng, project.feature_cum)]
        model = project.models[_pick(rng, project.model_cum)]
        provider = MODELS[model][0]
        customer = project.customers[_pick(rng, project.customer_cum)] if project.customers else None
        input_tokens = int(math.exp(rng.gauss(7.0, 1.1)))
        cached = int(input_tokens * rng.random()) if rng.random() < 0.33 else 0
        output_tokens = int(math.exp(rng.gauss(5.5, 1.0)))
        reasoning = int(output_tokens * rng.random() * 3) if model in REASONING else 0
        roll = rng.random()
        status, http_status, estimated = "ok", 200, False
        if roll < 0.015:
            status, http_status, output_tokens, reasoning = "error", 500, 0, 0
        elif roll < 0.035:
            status, estimated = "incomplete", True
        rate_in, rate_cached, rate_out = self.rates[model]
        units = (input_tokens - cached) * rate_in + cached * rate_cached + (output_tokens + reasoning) * rate_out
        cost: Decimal | None = Decimal(units).scaleb(-12)
        if rng.random() < 0.01:
            cost = None  # a model without a known price
        tags = None
        if rng.random() < 0.33:
            tags = {"workflow": f"wf-{rng.randint(0, 30)}", "ticket": f"T-{rng.randint(0, 50_000)}"}
        millis = int(ts.timestamp() * 1000)
        priced = cost is not None
        return UsageEvent(
            id=f"{millis:012x}{rng.getrandbits(80):020x}",
            ts=ts,
            provider=provider,
            model=model,
            endpoint=ENDPOINTS.get(provider, "/v1/chat/completions"),
            stream=rng.random() < 0.4,
            status=status,
            http_status=http_status,
            project=project.name,
            team=project.team,
            cost_center=project.cost_center,
            feature=feature,
            environment=environment,
            customer=customer,
            key=key,
            trace_id=trace,
            tags=tags,
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning,
            cost_usd=cost,
            rates=self.rate_text[model] if priced else None,
            price_source="genai-prices" if priced else None,
            estimated=estimated,
            latency_ms=round(rng.uniform(150, 4000), 1),
            service_tier=None if self.tier_rng is None else _pick_tier(self.tier_rng.random()),
        )


def _pick_tier(roll: float) -> str | None:
    """Most requests name no tier; some ask for flex or priority, a few are batch."""
    for tier, below in ((None, 0.6), ("standard", 0.8), ("flex", 0.9), ("priority", 0.97)):
        if roll < below:
            return tier
    return "batch"


def _pick(rng: random.Random, cum: tuple[float, ...]) -> int:
    return min(bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)
