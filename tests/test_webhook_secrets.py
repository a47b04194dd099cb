"""Item 19 (issue 9): webhook signing secrets are encrypted at rest.

Stored as ``fernet:…`` under SPENDGATE_ENCRYPTION_KEY; a secret stored in clear by an older
version still signs, and ``spendgate webhooks rekey`` encrypts it; without a key, adding a
secret is refused with what to do (never stored in clear).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from spendgate.budgets.model import Budget, Scope
from spendgate.cli.main import main as cli
from spendgate.ledger.store.dialects.sqlite import SQLiteStore
from spendgate.secretbox import PREFIX, SecretBox, SecretBoxError, new_key
from spendgate.settings import SettingsError, load_settings
from tests.conftest import Gateway
from tests.test_alerts_support import Clock, running_receiver, verified

KEY, OLD_KEY = new_key(), new_key()


# --- the box (pure) ------------------------------------------------------------------------------
def test_a_sealed_secret_opens_with_its_key_only() -> None:
    box = SecretBox(KEY)
    sealed = box.seal("whsec-abc")
    assert sealed.startswith(PREFIX) and "whsec-abc" not in sealed
    assert box.open(sealed) == "whsec-abc"
    assert box.seal("whsec-abc") != sealed  # a fresh IV each time: equal secrets do not show
    with pytest.raises(SecretBoxError, match="not in SPENDGATE_ENCRYPTION_KEY"):
        SecretBox(OLD_KEY).open(sealed)
    with pytest.raises(SecretBoxError, match="SPENDGATE_ENCRYPTION_KEY is not set"):
        SecretBox(None).open(sealed)


def test_without_a_key_nothing_is_sealed_but_clear_text_still_opens() -> None:
    box = SecretBox(None)
    assert not box.has_key
    with pytest.raises(SecretBoxError, match="webhooks new-key"):
        box.seal("whsec-abc")
    assert box.open("whsec-legacy") == "whsec-legacy"


def test_a_malformed_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(SecretBoxError) as caught:
        SecretBox("not-a-key-s3cret")
    assert "s3cret" not in str(caught.value) and "key 1" in str(caught.value)
    with pytest.raises(SettingsError, match="not a Fernet key"):
        load_settings(environ={"SPENDGATE_ENCRYPTION_KEY": f"{KEY},oops"}, config_path=None)


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old_sealed = SecretBox(OLD_KEY).seal("whsec-rot")
    both = SecretBox(f"{KEY},{OLD_KEY}")
    assert both.open(old_sealed) == "whsec-rot"
    resealed = both.reseal(old_sealed)
    assert SecretBox(KEY).open(resealed) == "whsec-rot"  # the old key is no longer needed


# --- the CLI -------------------------------------------------------------------------------------
def run(db_url: str, *args: str, key: str | None = KEY) -> Result:
    env = {"SPENDGATE_ENCRYPTION_KEY": key} if key else {"SPENDGATE_ENCRYPTION_KEY": ""}
    return CliRunner(env=env).invoke(cli, [*args, "--db", db_url])


def _stored(db_url: str) -> dict[str, str]:
    store = SQLiteStore.from_url(db_url)
    try:
        return store.webhook_secrets()
    finally:
        store.close()


def test_add_stores_the_secret_encrypted(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'l.db'}"
    added = run(db_url, "webhooks", "add", "https://example.com/hook", "--secret", "whsec-9", "--json")
    assert added.exit_code == 0, added.output
    [stored] = _stored(db_url).values()
    assert stored.startswith(PREFIX) and "whsec-9" not in stored
    assert SecretBox(KEY).open(stored) == "whsec-9"
    assert b"whsec-9" not in (tmp_path / "l.db").read_bytes()


def test_add_without_a_key_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'l.db'}"
    refused = run(db_url, "webhooks", "add", "https://example.com/hook", "--secret", "whsec-9", key=None)
    assert refused.exit_code == 1
    assert "SPENDGATE_ENCRYPTION_KEY is not set" in refused.output and "webhooks new-key" in refused.output
    assert "whsec-9" not in refused.output
    assert _stored(db_url) == {}
    unsigned = run(db_url, "webhooks", "add", "https://example.com/hook", key=None)  # no secret: no key needed
    assert unsigned.exit_code == 0, unsigned.output


def test_new_key_prints_a_usable_key() -> None:
    printed = CliRunner().invoke(cli, ["webhooks", "new-key"])
    assert printed.exit_code == 0
    box = SecretBox(printed.stdout.strip())
    assert box.open(box.seal("x")) == "x"


def test_a_clear_secret_still_signs_and_rekey_encrypts_it(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'l.db'}"
    with running_receiver() as (rx, url):
        store = SQLiteStore.from_url(db_url)
        hook = store.add_webhook(f"{url}/hook", "whsec-legacy")  # as an older spendgate stored it
        store.add_webhook(f"{url}/other")  # unsigned: rekey leaves it alone
        store.close()
        sent = run(db_url, "webhooks", "test", hook["id"], key=None)  # readable without a key
        assert sent.exit_code == 0, sent.output

        no_key = run(db_url, "webhooks", "rekey", key=None)
        assert no_key.exit_code == 1 and "SPENDGATE_ENCRYPTION_KEY is not set" in no_key.output
        assert _stored(db_url) == {hook["id"]: "whsec-legacy"}

        rekeyed = run(db_url, "webhooks", "rekey", "--json")
        assert rekeyed.exit_code == 0, rekeyed.output
        assert orjson.loads(rekeyed.stdout) == {"rekeyed": 1, "were_in_clear": 1, "webhooks_with_secret": 1}
        stored = _stored(db_url)[hook["id"]]
        assert stored.startswith(PREFIX) and SecretBox(KEY).open(stored) == "whsec-legacy"

        wrong = run(db_url, "webhooks", "test", hook["id"], key=OLD_KEY)
        assert wrong.exit_code == 1 and "not in SPENDGATE_ENCRYPTION_KEY" in wrong.output
        assert run(db_url, "webhooks", "test", hook["id"]).exit_code == 0
        # Rotation: a new key first, the current one after it; rekey moves every secret over.
        newer = new_key()
        assert run(db_url, "webhooks", "rekey", key=f"{newer},{KEY}").exit_code == 0
        assert SecretBox(newer).open(_stored(db_url)[hook["id"]]) == "whsec-legacy"
        got = rx.requests
    assert len(got) == 2
    for request in got:
        assert verified(request.body, request.headers["x-spendgate-signature"], "whsec-legacy")


# --- the gateway ---------------------------------------------------------------------------------
def test_the_gateway_signs_alerts_with_the_decrypted_secret(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(clock=Clock(datetime(2026, 11, 1, 0, 30, tzinfo=UTC)), encryption_key=KEY)
    with running_receiver() as (rx, url):
        gateway.store.add_webhook(f"{url}/hook", SecretBox(KEY).seal("whsec-gw"))
        gateway.team("payments")
        gateway.project("checkout", team="payments")
        key = gateway.key("checkout-key", project="checkout")
        gateway.store.create_budget(
            Budget("payments", Scope.parse("team:payments"), Decimal("0.000001"), alert_at=(50,), soft=True)
        )
        gateway.wait_for_directory()
        gateway.openai(key).chat.completions.create(
            model="gpt-4o-mini", max_tokens=20, messages=[{"role": "user", "content": "[[sim output=20]] hi"}]
        )
        deadline = time.monotonic() + 10
        while not rx.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        got = list(rx.requests)
    assert got, "no alert arrived"
    assert all(verified(r.body, r.headers["x-spendgate-signature"], "whsec-gw") for r in got)
