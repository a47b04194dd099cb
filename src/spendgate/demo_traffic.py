"""The synthetic month the demo drives through the gateway: who the agents are, what they
call, how big their requests are (pure data and a seeded plan; no I/O)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Team:
    name: str
    cost_center: str


@dataclass(frozen=True)
class Agent:
    project: str
    team: str
    endpoint: str  # chat, responses, embeddings, messages
    models: tuple[str, ...]
    weight: float  # share of the month's requests
    input_tokens: tuple[int, int]
    output_tokens: tuple[int, int]
    cached_share: float = 0.0  # probability a request hits the prompt cache
    cache_write_share: float = 0.0  # Anthropic: probability it writes the cache
    stream_share: float = 0.0
    reasoning_share: float = 0.0  # part of output spent reasoning (reasoning models)
    features: tuple[str, ...] = ()
    customers: int = 0  # how many distinct customers it serves (0: not customer-facing)


TEAMS = (Team("payments", "CC-1001"), Team("growth", "CC-2040"), Team("support", "CC-3100"))

AGENTS = (
    Agent(
        "checkout-copilot",
        "payments",
        "chat",
        ("gpt-4o", "gpt-4o-mini"),
        0.22,
        (1200, 4000),
        (150, 600),
        cached_share=0.6,
        stream_share=0.5,
        features=("cart-help", "refund-explainer"),
        customers=40,
    ),
    Agent(
        "search-reranker",
        "growth",
        "embeddings",
        ("text-embedding-3-small",),
        0.20,
        (200, 900),
        (0, 0),
        features=("rerank",),
    ),
    Agent(
        "onboarding-flow",
        "growth",
        "responses",
        ("o4-mini", "gpt-4.1-mini"),
        0.12,
        (600, 2000),
        (300, 1500),
        cached_share=0.3,
        stream_share=0.4,
        reasoning_share=0.5,
        features=("welcome", "setup-wizard"),
        customers=25,
    ),
    Agent(
        "chat-assistant",
        "support",
        "messages",
        ("claude-sonnet-4-6", "claude-haiku-4-5"),
        0.26,
        (2000, 8000),
        (200, 900),
        cached_share=0.7,
        cache_write_share=0.2,
        stream_share=0.7,
        features=("faq", "escalation"),
        customers=60,
    ),
    Agent(
        "summarizer",
        "support",
        "messages",
        ("claude-haiku-4-5",),
        0.12,
        (4000, 20000),
        (200, 500),
        cache_write_share=0.1,
        features=("ticket-summary",),
    ),
)

# Traffic nobody tagged: a script on a shared key with no project.
UNTAGGED = Agent("", "", "chat", ("gpt-4o-mini", "gpt-4o"), 0.08, (300, 3000), (50, 400), stream_share=0.2)

ERROR_RATE = 0.02


@dataclass(frozen=True)
class PlannedRequest:
    at: datetime
    agent: Agent
    model: str
    stream: bool
    directive: str  # the simulator directive: what the fake provider will report
    feature: str | None
    customer: str | None


def plan_month(total: int, start: datetime, seed: int) -> list[PlannedRequest]:
    """A month of requests in time order, busier on weekdays and in working hours."""
    rng = random.Random(seed)
    agents = (*AGENTS, UNTAGGED)
    weights = [a.weight for a in agents]
    month = timedelta(days=30)
    planned = []
    for _ in range(total):
        at = start + month * rng.random()
        if at.weekday() >= 5 and rng.random() < 0.6:  # quieter weekends
            at -= timedelta(days=2)
        at = at.replace(hour=min(23, max(0, int(rng.gauss(14, 3)))))
        agent = rng.choices(agents, weights)[0]
        planned.append(_request(rng, agent, max(at, start)))
    planned.sort(key=lambda p: p.at)
    return planned


def _request(rng: random.Random, agent: Agent, at: datetime) -> PlannedRequest:
    model = rng.choice(agent.models)
    input_tokens = rng.randint(*agent.input_tokens)
    output_tokens = rng.randint(*agent.output_tokens) if agent.output_tokens[1] else 0
    parts = [f"input={input_tokens}", f"output={output_tokens}"]
    if agent.endpoint == "messages":
        # Anthropic counts cache reads/writes beside input_tokens, not inside it.
        if rng.random() < agent.cached_share:
            parts.append(f"cached={int(input_tokens * rng.uniform(0.5, 0.9))}")
        if rng.random() < agent.cache_write_share:
            parts.append(f"cache_write={int(input_tokens * rng.uniform(0.2, 0.5))}")
    elif rng.random() < agent.cached_share:
        parts.append(f"cached={int(input_tokens * rng.uniform(0.3, 0.8)) // 128 * 128}")
    if agent.reasoning_share and output_tokens:
        parts.append(f"reasoning={int(output_tokens * agent.reasoning_share)}")
    if rng.random() < ERROR_RATE:
        parts.append(f"status={rng.choice((429, 500))}")
    stream = agent.endpoint != "embeddings" and rng.random() < agent.stream_share
    return PlannedRequest(
        at=at,
        agent=agent,
        model=model,
        stream=stream,
        directive="[[sim " + " ".join(parts) + "]]",
        feature=rng.choice(agent.features) if agent.features else None,
        customer=f"cust-{rng.randint(1, agent.customers):03d}" if agent.customers else None,
    )
