"""When finance deliveries are due (pure), and the [finance] settings refused with clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from spendgate.finance.schedule import MONTHLY, WEEKLY, Due, ScheduleError, due_deliveries, parse_week, week_key
from spendgate.settings import SettingsError, load_settings

BOTH = (MONTHLY, WEEKLY)


@pytest.mark.parametrize(
    "now, expected",
    [
        # The first check after 00:00 UTC on the 1st: November's report; Tuesday 1 December: week 48.
        (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), [Due(MONTHLY, "2026-11"), Due(WEEKLY, "2026-W48")]),
        (datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), [Due(MONTHLY, "2026-10"), Due(WEEKLY, "2026-W48")]),
        # A Monday: the week that ended at midnight; across a year with 53 ISO weeks.
        (datetime(2027, 1, 4, 0, 0, tzinfo=UTC), [Due(MONTHLY, "2026-12"), Due(WEEKLY, "2026-W53")]),
        (datetime(2027, 1, 3, 23, 59, tzinfo=UTC), [Due(MONTHLY, "2026-12"), Due(WEEKLY, "2026-W52")]),
        # January's 1st: December of the year before.
        (datetime(2026, 1, 1, 0, 30, tzinfo=UTC), [Due(MONTHLY, "2025-12"), Due(WEEKLY, "2025-W52")]),
    ],
)
def test_the_previous_month_and_iso_week_are_due(now: datetime, expected: list[Due]) -> None:
    assert due_deliveries(now, BOTH, []) == expected


def test_what_is_done_or_off_is_not_due() -> None:
    now = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    assert due_deliveries(now, BOTH, [Due(MONTHLY, "2026-11")]) == [Due(WEEKLY, "2026-W48")]
    assert due_deliveries(now, BOTH, [Due(MONTHLY, "2026-10"), Due(WEEKLY, "2026-W47")]) == [
        Due(MONTHLY, "2026-11"),
        Due(WEEKLY, "2026-W48"),
    ]
    assert due_deliveries(now, (WEEKLY,), []) == [Due(WEEKLY, "2026-W48")]
    assert due_deliveries(now, (), []) == []


def test_weeks_parse_and_normalize() -> None:
    assert parse_week("2026-W48").isoformat() == "2026-11-23"
    assert week_key(parse_week("2026-w01")) == "2026-W01"
    for bad in ("2026-48", "2026-W1", "W48", "2026-W48x", "2026-W54", "2025-W53", "2026-W00"):
        with pytest.raises(ScheduleError):
            parse_week(bad)


@pytest.mark.parametrize(
    "table, message",
    [
        ("deliver_to = 5", "deliver_to must be a directory path or an http(s) URL"),
        ('deliver_to = "ftp://host/x"', "only http(s) URLs or a directory path"),
        ('deliver_to = "https:///x"', "a URL needs a host"),
        ('deliver_to = "https://user:pw@hooks.example/x"', "set SPENDGATE_FINANCE_WEBHOOK_SECRET"),
        ('deliver_to = "/srv/f"\nformats = ["pdf2"]', "formats: unknown 'pdf2'; one of json, csv, html"),
        ('deliver_to = "/srv/f"\nformats = []', "formats must name at least one format"),
        ('deliver_to = "/srv/f"\nformats = "json"', "formats must be a list of names"),
        ('deliver_to = "/srv/f"\nformats = ["csv", "csv"]', "formats names one twice"),
        ('deliver_to = "/srv/f"\nstatements_by = ["project"]', "unknown 'project'; one of team, cost_center, customer"),
        ('deliver_to = "/srv/f"\nformats = ["html"]\nstatements_by = ["team"]', "statements_by needs a statement"),
        ('statements_by = ["team"]', "statements_by is set but deliver_to is empty"),
        ('weekly_summary = "yes"', "weekly_summary must be true or false"),
        ('secret_env = "not a name"', "secret_env must name an environment variable"),
        ("hour = 3", "unknown keys ['hour']"),
    ],
)
def test_bad_finance_settings_are_refused(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "spendgate.toml"
    config.write_text(f"[finance]\n{table}\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={}, config_path=config)
    assert message in str(refused.value) and str(config) in str(refused.value)
    assert "pw" not in str(refused.value)  # a URL's credentials are never repeated


def test_finance_settings_are_read(tmp_path: Path) -> None:
    config = tmp_path / "spendgate.toml"
    config.write_text(
        '[finance]\ndeliver_to = "https://hooks.example/finance"\nformats = ["csv", "json"]\n'
        'statements_by = ["team", "customer"]\nweekly_summary = true\nsecret_env = "FIN_SECRET"\n'
    )
    finance = load_settings(environ={"FIN_SECRET": "s3cret"}, config_path=config).finance
    assert (finance.to_webhook, finance.formats, finance.statements_by, finance.weekly_summary) == (
        True,
        ("csv", "json"),
        ("team", "customer"),
        True,
    )
    assert finance.secret == "s3cret" and "s3cret" not in repr(finance)
    config.write_text("")
    off = load_settings(environ={}, config_path=config).finance
    assert not off.monthly and not off.weekly_summary
