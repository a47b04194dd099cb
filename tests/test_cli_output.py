"""What the CLI prints and refuses: user data as plain text, tables whole when piped, no ledger
made by a command that only reads, and the same common options on every command."""

from __future__ import annotations

import sqlite3
import tomllib
from collections.abc import Callable
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner, Result

from spendgate.cli import main
from spendgate.settings import SETTINGS, load_settings
from tests.conftest import Gateway

ROOT = Path(__file__).resolve().parent.parent
MARKUP = ("[/oops]", "[link=https://x.example]y[/link]", "[bold red]loud[/]", ":smile:")


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no spendgate.toml (or spendgate.db) from the working directory
    monkeypatch.delenv("SPENDGATE_DB", raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok(*args: str) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


# --- item 10: user data is printed as plain text -------------------------------------------------
def test_markup_in_user_data_is_printed_literally(gateway: Gateway) -> None:
    key = gateway.key("k")
    client = gateway.openai(key)
    for value in MARKUP:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-spendgate-feature": value, "x-spendgate-customer": value},
        )
    gateway.flush()
    db = gateway.db_url
    report = ok("report", "--by", "feature,customer", "--db", db).stdout
    events = ok("events", "--db", db).stdout
    for value in MARKUP:
        assert value in report
        assert value in events
    # A link would be an OSC 8 escape sequence; nothing is styled either.
    assert "\x1b" not in report + events

    ok("teams", "create", "payments", "--cost-center", "[/oops]", "--db", db)
    assert "[/oops]" in ok("teams", "list", "--db", db).stdout


# --- item 25: tables show whole values when not on a terminal -----------------------------------
def test_tables_print_whole_values_when_not_a_terminal(gateway: Gateway) -> None:
    long_feature = "refund-eligibility-assistant-" + "x" * 150
    long_customer = "customer-with-a-very-long-identifier-0123456789abcdef"
    gateway.openai(gateway.key("a-key-with-a-rather-long-name-too")).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-spendgate-feature": long_feature, "x-spendgate-customer": long_customer},
    )
    gateway.flush()
    db = gateway.db_url
    report = ok("report", "--by", "team,project,feature,customer,model,key", "--db", db).stdout
    events = ok("events", "--db", db).stdout
    for out in (report, events):
        assert "…" not in out
        assert long_feature in out  # on one line, whole
    assert long_customer in report and "a-key-with-a-rather-long-name-too" in events


# --- item 17: read-only commands never create a ledger --------------------------------------------
READ_ONLY = [
    ("report",),
    ("events",),
    ("budgets", "list"),
    ("budgets", "status"),
    ("teams", "list"),
    ("projects", "list"),
    ("keys", "list"),
    ("keys", "revoke", "ci"),
    ("limits", "list"),
    ("policies", "list"),
    ("webhooks", "list"),
    ("alerts", "list"),
    ("prune", "--before", "2025-01-01"),
]


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_commands_refuse_a_missing_sqlite_ledger(tmp_path: Path, command: tuple[str, ...]) -> None:
    typo = tmp_path / "spendgat.db"
    result = run(*command, "--db", f"sqlite:///{typo}")
    assert result.exit_code == 1
    assert f"no spendgate ledger at sqlite:///{typo}" in result.output
    assert "spendgate migrate" in result.output and "Traceback" not in result.output
    assert not typo.exists()
    assert list(tmp_path.iterdir()) == []


def test_the_default_database_is_not_made_by_a_report(tmp_path: Path) -> None:
    result = run("report")  # in a directory without spendgate.db
    assert result.exit_code == 1 and "no spendgate ledger at sqlite:///./spendgate.db" in result.output
    assert not (tmp_path / "spendgate.db").exists()


def test_a_file_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.db").touch()
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE things (x)")
    other.close()
    (tmp_path / "notes.db").write_text("not a database at all\n" * 100)
    for name in ("empty.db", "other.db", "notes.db"):
        result = run("events", "--db", f"sqlite:///{tmp_path / name}")
        assert result.exit_code == 1 and "is not a spendgate database" in result.output, name
    assert (tmp_path / "empty.db").stat().st_size == 0  # left as it was


def test_creating_commands_make_the_ledger_then_reads_work(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'new.db'}"
    ok("teams", "create", "payments", "--db", db)
    assert (tmp_path / "new.db").is_file()
    assert "payments" in ok("teams", "list", "--db", db).stdout
    assert ok("report", "--format", "json", "--db", db).stdout.strip().startswith("{")


def test_read_only_commands_refuse_an_unmigrated_postgres_schema(postgres_db: Callable[[], str]) -> None:
    url = postgres_db()
    # Trust authentication ignores the password: it is only there to be hidden.
    with_password = url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    for command in (("report",), ("budgets", "list"), ("events",)):
        result = run(*command, "--db", with_password)
        assert result.exit_code == 1, result.output
        assert "no spendgate ledger at postgresql://postgres:***@127.0.0.1" in result.output
        assert "hunter2" not in result.output and "never migrated" in result.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone() == (0,)
    ok("migrate", "--db", url)
    assert ok("report", "--format", "json", "--db", url).stdout.strip().startswith("{")


@pytest.mark.parametrize("command", [("events",), ("alerts", "list")], ids=" ".join)
@pytest.mark.parametrize("limit", ["0", "-1", str(2**64)])
def test_a_limit_out_of_range_is_a_usage_error(tmp_path: Path, command: tuple[str, ...], limit: str) -> None:
    ok("migrate", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    result = run(*command, "--limit", limit, "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2 and "Invalid value for '--limit'" in result.output


# --- item 25: the common options the README promises ----------------------------------------------
def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            found.update(_commands(command, path))
        else:
            found[path] = command
    return found


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in param.opts if opt.startswith("--")}


def test_every_command_takes_the_common_options_the_readme_promises() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "Every command that uses the database takes `--db URL` and `--config FILE`" in readme
    # The documented exceptions, and only those.
    exceptions = {
        "demo": {"--db"},
        "serve": {"--db", "--config"},
        "simulator": set(),
        "webhooks new-key": {"--json"},
    }
    for path, command in _commands(main).items():
        expected = exceptions.get(path, {"--db", "--config", "--json"})
        assert expected <= _options(command), f"spendgate {path} lacks {expected - _options(command)}"
        if path in exceptions:
            assert not ({"--db", "--config", "--json"} - expected) & _options(command), path


# --- item 25: the files pyproject.toml and the README name -------------------------------------
def test_the_license_pyproject_names_is_there() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_example_config_parses_and_names_every_setting(tmp_path: Path) -> None:
    example = (ROOT / "spendgate.toml.example").read_text()
    assert load_settings(environ={}, config_path=ROOT / "spendgate.toml.example") == load_settings(environ={})
    # Uncommented, every line of it is a valid setting.
    uncommented = "\n".join(line.removeprefix("# ") for line in example.splitlines() if "=" in line or "[" in line)
    path = tmp_path / "spendgate.toml"
    path.write_text(uncommented)
    settings = load_settings(environ={}, config_path=path)
    named = set(tomllib.loads(uncommented)) - {"providers", "attribution", "reconcile", "finance"}  # tables
    assert named == {s.name for s in SETTINGS}
    for setting in SETTINGS:
        if setting.default is not None:  # the example shows the default
            assert getattr(settings, setting.name) == setting.default, setting.name
    assert settings.providers["groq"].base_url == "https://api.groq.com/openai/v1"
    assert "spendgate.toml.example" in (ROOT / "README.md").read_text()
