"""Login throttling (pure): failed logins are counted per user name and per client address,
in the ledger so that every replica counts the same; past a few, each further failure makes
the next attempt wait, twice as long each time.

| failures in a row | next attempt allowed after the last one |
| --- | --- |
| 1-4 | at once |
| 5 | 30 s |
| 6 | 60 s |
| n | 30 s x 2^(n-5), at most 1 hour |

A user's count is cleared by a successful login. Counts are forgotten 24 hours after their last
failure (an address's count only that way: a login that succeeds from it does not clear it, so
an attacker with one account of their own cannot reset it between guesses).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

FREE_FAILURES = 4
FIRST_LOCKOUT = timedelta(seconds=30)
MAX_LOCKOUT = timedelta(hours=1)
FORGET_AFTER = timedelta(hours=24)
# The longest user name or address kept as a throttling subject.
MAX_SUBJECT = 256


def lockout(failures: int) -> timedelta:
    """How long after its last failure a subject with ``failures`` must wait."""
    if failures <= FREE_FAILURES:
        return timedelta(0)
    steps = min(failures - FREE_FAILURES - 1, 20)  # 2**20 x 30 s is far past the cap already
    return min(FIRST_LOCKOUT * 2**steps, MAX_LOCKOUT)


def wait_seconds(records: Iterable[tuple[int, datetime]], now: datetime) -> int:
    """Whole seconds to wait before the next attempt, given each subject's (failures, last
    failure); 0 when an attempt may be made now."""
    wait = timedelta(0)
    for failures, last in records:
        if now - last >= FORGET_AFTER:
            continue
        wait = max(wait, last + lockout(failures) - now)
    seconds = wait.total_seconds()
    return 0 if seconds <= 0 else int(seconds) + (seconds % 1 > 0)


def subject(text: str) -> str:
    return text[:MAX_SUBJECT]
