"""`spendgate webhooks …` and `spendgate alerts …`: where budget alerts go, and what was sent."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import click

from spendgate.alerts.model import AlertStore
from spendgate.cli.support import LIMIT_MAX, db_options, json_option, print_json, print_table
from spendgate.redact import redact_url, redact_urls
from spendgate.secretbox import SecretBox, SecretBoxError, is_sealed, new_key
from spendgate.settings import Settings


def _box(settings: Settings) -> SecretBox:
    try:
        return SecretBox(settings.encryption_key)
    except SecretBoxError as exc:
        raise click.ClickException(str(exc)) from exc


def _shown(hook: dict[str, Any]) -> dict[str, Any]:
    """A webhook as printed: its URL without credentials (it is stored, and used, whole)."""
    return {**hook, "url": redact_url(hook["url"])}


@click.group()
def webhooks() -> None:
    """Webhooks receiving budget alerts (JSON, or Slack incoming-webhook messages)."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--secret",
    default=None,
    help="Sign each body with HMAC-SHA256 (x-spendgate-signature); stored encrypted under SPENDGATE_ENCRYPTION_KEY.",
)
@click.option("--format", "fmt", type=click.Choice(["json", "slack"]), default="json", show_default=True)
@click.option("--team", default=None, help="The team it belongs to: it also receives that team's weekly summary.")
@json_option
@db_options(creates=True, with_settings=True)
def webhooks_add(
    store: AlertStore, url: str, secret: str | None, fmt: str, team: str | None, as_json: bool, settings: Settings
) -> None:
    sealed = None
    if secret:
        try:
            sealed = _box(settings).seal(secret)  # refused, with what to do, when there is no key
        except SecretBoxError as exc:
            raise click.ClickException(str(exc)) from exc
    hook = _shown(store.add_webhook(url, sealed, fmt, team))
    if as_json:
        print_json(hook)
    else:
        signed = "signed" if hook["has_secret"] else "unsigned"
        owner = f", team {hook['team']}" if hook["team"] else ""
        click.echo(f"webhook {hook['id']} added: {hook['url']} ({hook['format']}, {signed}{owner})")


@webhooks.command("list")
@json_option
@db_options
def webhooks_list(store: AlertStore, as_json: bool) -> None:
    hooks = [_shown(hook) for hook in store.list_webhooks()]
    if as_json:
        print_json(hooks)
    else:
        print_table(
            ["id", "url", "format", "signed", "team", "created"],
            [[h["id"], h["url"], h["format"], h["has_secret"], h["team"], h["created_at"]] for h in hooks],
        )


@webhooks.command("remove")
@click.argument("id_or_url")
@json_option
@db_options
def webhooks_remove(store: AlertStore, id_or_url: str, as_json: bool) -> None:
    hook = _shown(store.remove_webhook(id_or_url))
    if as_json:
        print_json(hook)
    else:
        click.echo(f"webhook {hook['id']} removed ({hook['url']})")


@webhooks.command("test")
@click.argument("id_or_url")
@click.option(
    "--timeout", default=10.0, show_default=True, type=click.FloatRange(0, 600, min_open=True), help="Seconds to wait."
)
@json_option
@db_options(with_settings=True)
def webhooks_test(store: AlertStore, id_or_url: str, timeout: float, as_json: bool, settings: Settings) -> None:
    """Send a (signed, if it has a secret) `webhook.test` event now; show the status and time.

    The receiver's answer is not shown: a webhook URL can point anywhere the gateway can
    reach, and its answer is none of the caller's business (nor a way to read internal pages)."""
    hook = store.webhook(id_or_url)
    shown = redact_url(hook["url"])
    started = time.perf_counter()
    try:
        status = asyncio.run(_send_test(store, hook, timeout, _box(settings)))
    except SecretBoxError as exc:
        raise click.ClickException(str(exc)) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = redact_urls(str(exc)) or type(exc).__name__
        raise click.ClickException(f"could not reach {shown}: {reason}") from exc
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    if as_json:
        print_json({"webhook": hook["id"], "url": shown, "status": status, "elapsed_ms": elapsed_ms})
    else:
        click.echo(f"{shown} answered {status} in {elapsed_ms} ms")
    if not 200 <= status < 300:
        raise click.ClickException(f"the receiver refused the test event (HTTP {status})")


async def _send_test(store: AlertStore, hook: dict[str, Any], timeout: float, box: SecretBox) -> int:
    from spendgate.alerts.dispatcher import AlertDispatcher

    dispatcher = AlertDispatcher(store, timeout=timeout, lease_seconds=timeout + 1, secrets=box)
    try:
        return await dispatcher.send_test(hook)
    finally:
        await dispatcher.aclose()


@webhooks.command("new-key")
@json_option
def webhooks_new_key(as_json: bool) -> None:
    """Print a fresh key for SPENDGATE_ENCRYPTION_KEY (nothing is stored; no database used)."""
    key = new_key()
    if as_json:
        print_json({"key": key})
    else:
        click.echo(key)


@webhooks.command("rekey")
@json_option
@db_options(with_settings=True)
def webhooks_rekey(store: AlertStore, as_json: bool, settings: Settings) -> None:
    """Encrypt every webhook secret under the first key of SPENDGATE_ENCRYPTION_KEY: secrets
    stored in clear (before encryption existed) and under an older key (listed after it)."""
    box = _box(settings)
    if not box.has_key:
        raise click.ClickException(
            "SPENDGATE_ENCRYPTION_KEY is not set: make a key with `spendgate webhooks new-key` and set it first"
        )
    stored = store.webhook_secrets()
    try:
        resealed = {hook_id: box.reseal(value) for hook_id, value in stored.items()}
    except SecretBoxError as exc:  # nothing changed: every secret is opened before any is written
        raise click.ClickException(str(exc)) from exc
    clear = sum(1 for value in stored.values() if not is_sealed(value))
    changed = store.set_webhook_secrets(resealed, expected=stored)
    if as_json:
        print_json({"rekeyed": changed, "were_in_clear": clear, "webhooks_with_secret": len(stored)})
    else:
        click.echo(f"{changed} webhook secret(s) encrypted under the current key ({clear} were stored in clear)")


@click.group()
def alerts() -> None:
    """Budget alerts recorded (each threshold once per budget period) and their deliveries."""


@alerts.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, LIMIT_MAX), help="How many.")
@json_option
@db_options
def alerts_list(store: AlertStore, limit: int, as_json: bool) -> None:
    items = store.list_alerts(limit)
    if as_json:
        print_json(items)
        return
    rows = []
    for alert in items:
        payload = alert["payload"]
        statuses = [d["status"] for d in alert["deliveries"]]
        delivery = ", ".join(f"{statuses.count(s)} {s}" for s in ("delivered", "pending", "failed") if s in statuses)
        rows.append(
            [
                alert["created_at"],
                alert["kind"],
                alert["budget"],
                alert["window"],
                f"{alert['threshold']}%" if alert["threshold"] else None,
                payload.get("spent_usd"),
                delivery or "no webhooks",
            ]
        )
    print_table(["at", "event", "budget", "window", "threshold", "spent", "deliveries"], rows)
