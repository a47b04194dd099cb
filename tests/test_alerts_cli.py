"""`spendgate webhooks …` and `spendgate alerts list` through click, on a real database file
and against a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from spendgate.alerts.rules import THRESHOLD_CROSSED
from spendgate.cli.webhooks import alerts, webhooks
from spendgate.secretbox import new_key
from tests.test_alerts_support import NOW, Receiver, Store, running_receiver, verified


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with running_receiver() as running:
        yield running


KEY = new_key()  # webhook secrets are stored encrypted under it (secretbox.py)


def run(group: object, db_url: str, *args: str) -> Result:
    return CliRunner(env={"SPENDGATE_ENCRYPTION_KEY": KEY}).invoke(group, [*args, "--db", db_url])  # type: ignore[arg-type]


def test_add_list_remove(db_url: str) -> None:
    added = run(webhooks, db_url, "add", "https://example.com/hook", "--secret", "whsec-9", "--json")
    assert added.exit_code == 0, added.output
    hook = orjson.loads(added.stdout)
    assert hook["has_secret"] is True and "secret" not in hook and "whsec-9" not in added.output
    slack = run(webhooks, db_url, "add", "https://hooks.slack.com/services/T/B/X", "--format", "slack")
    assert slack.exit_code == 0 and "(slack, unsigned)" in slack.stdout

    listed = run(webhooks, db_url, "list", "--json")
    assert [(h["url"], h["format"], h["has_secret"]) for h in orjson.loads(listed.stdout)] == [
        ("https://example.com/hook", "json", True),
        ("https://hooks.slack.com/services/T/B/X", "slack", False),
    ]
    table = run(webhooks, db_url, "list")
    assert hook["id"] in table.stdout and "whsec-9" not in table.output

    removed = run(webhooks, db_url, "remove", "https://example.com/hook")
    assert removed.exit_code == 0 and f"webhook {hook['id']} removed" in removed.stdout
    assert len(orjson.loads(run(webhooks, db_url, "list", "--json").stdout)) == 1
    again = run(webhooks, db_url, "remove", hook["id"])
    assert again.exit_code == 1 and "unknown webhook" in again.output


def test_add_rejects_bad_input(db_url: str) -> None:
    bad_url = run(webhooks, db_url, "add", "not-a-url")
    assert bad_url.exit_code == 1 and "bad webhook URL" in bad_url.output
    bad_format = run(webhooks, db_url, "add", "https://example.com", "--format", "xml")
    assert bad_format.exit_code == 2


def test_test_sends_a_signed_event(db_url: str, receiver: tuple[Receiver, str]) -> None:
    rx, url = receiver
    hook = orjson.loads(run(webhooks, db_url, "add", f"{url}/hook", "--secret", "whsec-t", "--json").stdout)
    result = run(webhooks, db_url, "test", hook["id"])
    assert result.exit_code == 0, result.output
    assert f"{url}/hook answered 200 in " in result.stdout and " ms" in result.stdout
    assert "thanks" not in result.output  # the receiver's answer is never shown
    [got] = rx.requests
    assert got.json()["event"] == "webhook.test"
    assert verified(got.body, got.headers["x-spendgate-signature"], "whsec-t")


def test_test_as_json(db_url: str, receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    hook = orjson.loads(run(webhooks, db_url, "add", f"{url}/hook", "--json").stdout)
    result = run(webhooks, db_url, "test", hook["id"], "--json")
    assert result.exit_code == 0, result.output
    outcome = orjson.loads(result.stdout)
    assert (outcome["webhook"], outcome["url"], outcome["status"]) == (hook["id"], f"{url}/hook", 200)
    assert outcome["elapsed_ms"] >= 0 and set(outcome) == {"webhook", "url", "status", "elapsed_ms"}


def test_test_reports_a_refusal_or_no_answer(db_url: str, receiver: tuple[Receiver, str]) -> None:
    rx, url = receiver
    rx.fail_first, rx.fail_status = 1, 404
    run(webhooks, db_url, "add", f"{url}/hook")
    refused = run(webhooks, db_url, "test", f"{url}/hook")
    assert refused.exit_code == 1
    assert "answered 404" in refused.stdout and "HTTP 404" in refused.output
    assert "nope" not in refused.output
    with running_receiver() as (_, gone):
        pass
    run(webhooks, db_url, "add", f"{gone}/hook")
    unreachable = run(webhooks, db_url, "test", f"{gone}/hook", "--timeout", "2")
    assert unreachable.exit_code == 1 and "could not reach" in unreachable.output


def test_alerts_list(db_url: str) -> None:
    store = Store(db_url.removeprefix("sqlite:///"))
    try:
        store.add_webhook("https://example.com/hook")
        for n, threshold in enumerate((50, 80)):
            payload = {"event": THRESHOLD_CROSSED, "id": f"alrt_{n}", "threshold": threshold, "spent_usd": "81"}
            store.record_alert(THRESHOLD_CROSSED, "eng", "2026-11", threshold, payload, now=NOW)
    finally:
        store.close()
    as_json = run(alerts, db_url, "list", "--json", "--limit", "1")
    assert as_json.exit_code == 0, as_json.output
    [latest] = orjson.loads(as_json.stdout)
    assert (latest["id"], latest["threshold"], latest["deliveries"][0]["status"]) == ("alrt_1", 80, "pending")
    table = run(alerts, db_url, "list")
    assert table.exit_code == 0 and "1 pending" in table.stdout and "80%" in table.stdout
