"""Item 19 (issue 9): the ledger's files are its owner's only.

The SQLite database and its -wal/-shm files are created 0600, the spool's folders 0700 and
its files 0600, whatever the (usual, permissive) umask; a stricter umask still applies.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.spool import DeadLetters, dead_letter, event_fields
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from tests.conftest import Gateway


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The usual umask, and one that would leave new files world-writable."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _event(event_id: str) -> UsageEvent:
    return UsageEvent(
        id=event_id,
        ts=datetime.now(UTC),
        provider="openai",
        model="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        stream=False,
        status="ok",
        http_status=200,
    )


def test_a_new_sqlite_ledger_and_its_wal_files_are_private(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "deep" / "ledger.db"
    store = SQLiteStore.from_url(f"sqlite:///{path}")
    try:
        store.append_events([_event("ev-1")])  # the -wal and -shm files exist while it is open
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: oct(mode(f)) for f in files} == {f.name: oct(0o600) for f in files}
    finally:
        store.close()


def test_a_stricter_umask_is_respected(tmp_path: Path) -> None:
    old = os.umask(0o277)  # owner read-only: stricter than 0600
    try:
        path = tmp_path / "strict.db"
        from spendgate.ledger.private_files import create_private_file

        assert create_private_file(path)
        assert mode(path) == 0o400
    finally:
        os.umask(old)


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    SQLiteStore.from_url(f"sqlite:///{path}").close()
    path.chmod(0o640)  # an operator's choice (a backup group, say) is not undone
    SQLiteStore.from_url(f"sqlite:///{path}").close()
    assert mode(path) == 0o640


def test_the_gateways_spool_and_ledger_files_are_private(make_gateway, tmp_path: Path, umask: int) -> None:
    gateway: Gateway = make_gateway(spool_dir=str(tmp_path / "var" / "spool"))
    gateway.team("t")
    gateway.project("p", team="t")
    key = gateway.key("k", project="p")
    gateway.wait_for_directory()
    gateway.openai(key).chat.completions.create(
        model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    gateway.flush()  # writes the checkpoint too
    root = tmp_path / "var"
    # A dead letter and its rewrite (`spendgate dead-letters retry` rewrites the file).
    letters = DeadLetters.beside(root / "spool")
    letters.add([dead_letter("event", event_fields(_event("ev-dead")), ValueError("refused"))])
    letters.rewrite(lambda kept: kept)
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "checkpoint" for p in files) and any(p.suffix == ".jsonl" for p in files)
    assert {str(p): oct(mode(p)) for p in folders} == {str(p): oct(0o700) for p in folders}
    assert {str(p): oct(mode(p)) for p in files} == {str(p): oct(0o600) for p in files}
    if gateway.db_url.startswith("sqlite:"):
        db = Path(gateway.db_url.removeprefix("sqlite:///"))
        ledger_files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert {str(p): oct(mode(p)) for p in ledger_files if p.exists()} == {
            str(p): oct(0o600) for p in ledger_files if p.exists()
        }
