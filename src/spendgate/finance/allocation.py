"""Shared-cost allocation rules and their arithmetic (pure: amounts in, amounts out).

A rule moves a *pool* of spend onto *owners* (the values of one dimension: team, project or
cost center). The pool is emptied to the last digit and the total never changes: shares are
floored at the smallest unit and the units left over go, one each, to the largest remainders
(ties by owner name, so the split is repeatable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

METHODS = ("proportional", "even", "fixed")
OWNER_DIMENSIONS = ("team", "project", "cost_center")
POOL_KINDS = ("unallocated", "team", "project", "tag", "category")
# Shares are whole multiples of this (finer when the pool itself has more digits): far below
# any price, so the rounding of a share is invisible yet the sum stays exact.
DEFAULT_UNIT = Decimal("1e-10")
HUNDRED = Decimal(100)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_TARGETS = 500


class AllocationError(ValueError):
    pass


@dataclass(frozen=True)
class Pool:
    """What a rule moves: ``unallocated`` (spend with no owner in the rule's dimension),
    ``team:T``, ``project:P``, ``tag:K=V`` or ``category:C`` (other costs of a category)."""

    kind: str
    value: str | None = None  # team, project or category name; for a tag "K=V"

    @classmethod
    def parse(cls, text: str) -> Pool:
        text = text.strip()
        if text == "unallocated":
            return cls("unallocated")
        kind, sep, value = text.partition(":")
        if not sep or kind not in POOL_KINDS[1:] or not value or len(value) > 256:
            raise AllocationError(f"bad pool {text[:80]!r}: use unallocated, team:T, project:P, tag:K=V or category:C")
        if kind == "tag":
            key, eq, tag_value = value.partition("=")
            if not eq or not _NAME.match(key) or not tag_value:
                raise AllocationError(f"bad pool {text[:80]!r}: a tag pool is tag:KEY=VALUE")
        return cls(kind, value)

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"

    def where(self, by: str) -> tuple[tuple[str, tuple[str | None, ...]], ...]:
        """The report filter (``reports.spec.Where`` shape) selecting the pool's spend."""
        if self.kind == "unallocated":
            return ((by, (None,)),)
        if self.kind in ("team", "project"):
            return ((self.kind, (self.value,)),)
        if self.kind == "tag":
            assert self.value is not None
            key, _, value = self.value.partition("=")
            return ((f"tag:{key}", (value,)),)
        return (("model", (self.value,)), ("source", ("manual",)))  # other costs: category is the model

    def owner(self, by: str) -> str | None:
        """The owner the pool *is* at this level (team:T allocated by team), else None."""
        return self.value if self.kind == by else None


@dataclass(frozen=True)
class Rule:
    name: str
    pool: Pool
    method: str
    by: str = "team"
    # fixed: owner -> percent (summing to 100); proportional/even: the owners it may go to
    # (empty: every owner with direct spend in the period).
    targets: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise AllocationError(f"bad rule name {self.name[:80]!r}: letters, digits, _ . - (at most 64)")
        if self.method not in METHODS:
            raise AllocationError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.by not in OWNER_DIMENSIONS:
            raise AllocationError(f"--by must be one of {', '.join(OWNER_DIMENSIONS)}")
        if self.method == "fixed":
            if not self.targets:
                raise AllocationError("a fixed rule needs --to OWNER=PCT,…")
            if sum(self.targets.values(), Decimal(0)) != HUNDRED:
                raise AllocationError("the --to percentages of a fixed rule must sum to 100")
        if self.pool.owner(self.by) is not None and self.pool.owner(self.by) in self.targets:
            raise AllocationError(f"the pool {self.pool} cannot also be a target")


def parse_targets(text: str | None, method: str) -> dict[str, Decimal]:
    """``--to OWNER=PCT,…`` (fixed) or ``--to OWNER,…`` (who proportional/even may reach)."""
    if not text:
        return {}
    targets: dict[str, Decimal] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        owner, sep, pct = part.partition("=")
        owner = owner.strip()
        if not owner or len(owner) > 256:
            raise AllocationError(f"bad --to entry {part[:80]!r}")
        if owner in targets:
            raise AllocationError(f"--to names {owner[:80]!r} twice")
        if method == "fixed":
            try:
                share = Decimal(pct.strip())
            except ArithmeticError:
                raise AllocationError(f"bad percentage in --to {part[:80]!r}") from None
            if not sep or not share.is_finite() or share <= 0 or share > HUNDRED:
                raise AllocationError(f"--to {part[:80]!r}: a fixed rule gives each owner a percentage in (0, 100]")
            targets[owner] = share
        else:
            if sep:
                raise AllocationError("only a fixed rule takes percentages in --to")
            targets[owner] = Decimal(0)
        if len(targets) > MAX_TARGETS:
            raise AllocationError(f"--to names more than {MAX_TARGETS} owners")
    return targets


def unit_for(amount: Decimal) -> Decimal:
    """The smallest unit shares are counted in: DEFAULT_UNIT, or the amount's own last digit
    (trailing zeros aside: a database sum may carry eighteen places of them)."""
    exponent = amount.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return min(DEFAULT_UNIT, Decimal(1).scaleb(exponent))


def split(amount: Decimal, weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """``amount`` shared by ``weights`` (>= 0, not all 0), largest-remainder at ``unit_for``:
    the shares sum to ``amount`` exactly."""
    total_weight = sum(weights.values(), Decimal(0))
    if total_weight <= 0:
        raise AllocationError("nothing to share by: every weight is 0")
    unit = unit_for(amount)
    units = (amount / unit).to_integral_value()
    assert units * unit == amount
    floors: dict[str, int] = {}
    remainders: list[tuple[Decimal, str]] = []
    for owner, weight in weights.items():
        exact = units * weight / total_weight
        floor = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        floors[owner] = floor
        remainders.append((exact - floor, owner))
    left = int(units) - sum(floors.values())
    for _, owner in sorted(remainders, key=lambda r: (-r[0], r[1]))[:left]:
        floors[owner] += 1
    return {owner: floors[owner] * unit for owner in weights}


@dataclass(frozen=True)
class Move:
    """One allocated line: ``amount`` of ``rule``'s ``pool`` (held by ``source``, None: no
    owner) moved onto ``owner``."""

    rule: str
    pool: str
    source: str | None
    owner: str
    amount: Decimal


def apply_rule(
    rule: Rule, holdings: Mapping[str | None, Decimal], pool_parts: Mapping[str | None, Decimal]
) -> tuple[dict[str | None, Decimal], list[Move]]:
    """Move ``pool_parts`` (the pool's spend per current holder) onto the rule's owners.
    ``holdings``: every owner's spend so far (None: no owner). Returns the new holdings and
    the moves; the holdings' total is unchanged and what was the pool is now 0."""
    state = dict(holdings)
    for holder, part in pool_parts.items():
        if part > state.get(holder, Decimal(0)):
            raise AllocationError(f"rule {rule.name}: the pool {rule.pool} is partly moved already by an earlier rule")
    pool_total = sum(pool_parts.values(), Decimal(0))
    if pool_total == 0:
        return state, []
    pool_owner = rule.pool.owner(rule.by)
    after = {o: amount - pool_parts.get(o, Decimal(0)) for o, amount in state.items()}
    if rule.method == "fixed":
        weights = dict(rule.targets)
    else:
        candidates = {o: amount for o, amount in after.items() if o is not None and o != pool_owner and amount > 0}
        if rule.targets:
            candidates = {o: a for o, a in candidates.items() if o in rule.targets}
            if rule.method == "even":  # the named owners share evenly even without spend of their own
                candidates = {o: candidates.get(o, Decimal(0)) for o in rule.targets}
        if not candidates:
            raise AllocationError(f"rule {rule.name}: no owner to move the pool {rule.pool} onto in this period")
        weights = candidates if rule.method == "proportional" else {o: Decimal(1) for o in candidates}
    shares = split(pool_total, weights)
    # Each source gives its part; the receivers' shares are carved from the sources in order,
    # so every line says what came from where and the lines sum to both sides.
    moves: list[Move] = []
    sources = [(h, p) for h, p in sorted(pool_parts.items(), key=lambda kv: (kv[0] is None, kv[0] or "")) if p]
    receivers = [(o, s) for o, s in sorted(shares.items()) if s]
    si, left_in_source = 0, sources[0][1]
    for owner, share in receivers:
        while share:
            take = min(share, left_in_source)
            moves.append(Move(rule.name, str(rule.pool), sources[si][0], owner, take))
            share -= take
            left_in_source -= take
            if not left_in_source and si + 1 < len(sources):
                si += 1
                left_in_source = sources[si][1]
    for owner, share in shares.items():
        after[owner] = after.get(owner, Decimal(0)) + share
    return after, moves


@dataclass
class Allocation:
    """The outcome of applying rules: each owner's direct spend, what it received and gave."""

    direct: dict[str | None, Decimal]
    final: dict[str | None, Decimal]
    moves: list[Move]

    @property
    def total(self) -> Decimal:
        return sum(self.direct.values(), Decimal(0))

    def received(self, owner: str | None) -> Decimal:
        return sum((m.amount for m in self.moves if m.owner == owner), Decimal(0))

    def given(self, owner: str | None) -> Decimal:
        return sum((m.amount for m in self.moves if m.source == owner), Decimal(0))


def allocate(
    rules: Sequence[Rule],
    direct: Mapping[str | None, Decimal],
    pool_parts: Mapping[str, Mapping[str | None, Decimal]],
) -> Allocation:
    """Apply ``rules`` in order to ``direct`` spend per owner; ``pool_parts[rule.name]`` is
    that rule's pool per direct holder (a pool that *is* an owner takes all it holds by then,
    allocations received included)."""
    state = dict(direct)
    moves: list[Move] = []
    for rule in rules:
        pool_owner = rule.pool.owner(rule.by)
        if rule.pool.kind == "unallocated":  # the spend with no owner at this level, as it is by now
            parts: Mapping[str | None, Decimal] = {None: state.get(None, Decimal(0))}
        elif pool_owner is not None:
            parts = {pool_owner: state.get(pool_owner, Decimal(0))}
        else:
            parts = pool_parts.get(rule.name, {})
        state, rule_moves = apply_rule(rule, state, parts)
        moves += rule_moves
    return Allocation(direct=dict(direct), final=state, moves=moves)


def coverage_percent(direct: Mapping[str | None, Decimal]) -> Decimal | None:
    """The share of spend with an owner before allocation, in percent (None: no spend)."""
    total = sum(direct.values(), Decimal(0))
    if not total:
        return None
    return (total - direct.get(None, Decimal(0))) * HUNDRED / total
