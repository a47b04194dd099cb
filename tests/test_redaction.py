"""Credentials in URLs are never printed back or logged: one helper, used wherever a database,
Redis or webhook URL is shown."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from spendgate.cli import main
from spendgate.redact import redact_url, redact_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/spend", "postgresql://app:***@db:5432/spend"),
        # redis-hygiene: text to redact, never connected to
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "https://user:s3cret@hooks.example.com/x?token=s3cret&v=1",
            "https://user:***@hooks.example.com/x?token=***&v=1",
        ),
        ("https://hooks.example.com/x?Api-Key=s3cret", "https://hooks.example.com/x?Api-Key=***"),
        ("postgresql://app@db/spend?options=-csearch_path%3Dx", "postgresql://app@db/spend?options=-csearch_path%3Dx"),
        ("sqlite:///./spendgate.db", "sqlite:///./spendgate.db"),
        ("https://user@hooks.example.com/", "https://user@hooks.example.com/"),
        ("http://host:notaport/x", "<a malformed URL>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls_in_free_text() -> None:
    text = "could not reach https://u:s3cret@h/x (see http://h/?sig=s3cret): refused"
    assert redact_urls(text) == "could not reach https://u:***@h/x (see http://h/?sig=***): refused"


def _run(db: str, *args: str) -> Result:
    result = CliRunner().invoke(main, [*args, "--db", db])
    return result


def test_webhook_urls_are_never_printed_with_their_credentials(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://hook-user:hunter2@127.0.0.1:{port}/spend?token=t0ken"
    outputs = [
        _run(db, "webhooks", "add", url),
        _run(db, "webhooks", "add", url),  # a duplicate: the store's error names the URL
        _run(db, "webhooks", "list"),
        _run(db, "webhooks", "list", "--json"),
        _run(db, "webhooks", "test", url, "--timeout", "2"),
    ]
    [hook] = orjson.loads(outputs[3].stdout)
    outputs.append(_run(db, "webhooks", "remove", hook["id"], "--json"))
    assert outputs[0].exit_code == 0 and outputs[1].exit_code != 0 and outputs[4].exit_code != 0
    assert hook["url"] == f"http://hook-user:***@127.0.0.1:{port}/spend?token=***"
    for result in outputs:
        assert "hunter2" not in result.output and "t0ken" not in result.output, result.output
    assert "hook-user:***@" in outputs[0].output


def test_a_bad_webhook_or_database_url_is_refused_without_echoing_its_password(tmp_path: Path) -> None:
    bad_hook = _run(f"sqlite:///{tmp_path / 'x.db'}", "webhooks", "add", "ftp://u:hunter2@h/x")
    bad_db = _run("mysql://u:hunter2@h/x", "teams", "list")
    for result in (bad_hook, bad_db):
        assert result.exit_code != 0
        assert "hunter2" not in result.output and "u:***@h" in result.output, result.output
