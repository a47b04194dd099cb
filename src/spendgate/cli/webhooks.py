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


def _shown(hook: dict[str, Any]) -> dict[str, Any]:
    """A webhook as printed: its URL without credentials (it is stored, and used, whole)."""
    return {**hook, "url": redact_url(hook["url"])}


@click.group()
def webhooks() -> None:
    """Webhooks receiving budget alerts (JSON, or Slack incoming-webhook messages)."""


@webhooks.command("add")
@click.argument("url")
@click.option("--secret", default=None, help="Sign each body with HMAC-SHA256 (x-spendgate-signature).")
@click.option("--format", "fmt", type=click.Choice(["json", "slack"]), default="json", show_default=True)
@json_option
@db_options(creates=True)
def webhooks_add(store: AlertStore, url: str, secret: str | None, fmt: str, as_json: bool) -> None:
    hook = _shown(store.add_webhook(url, secret, fmt))
    if as_json:
        print_json(hook)
    else:
        signed = "signed" if hook["has_secret"] else "unsigned"
        click.echo(f"webhook {hook['id']} added: {hook['url']} ({hook['format']}, {signed})")


@webhooks.command("list")
@json_option
@db_options
def webhooks_list(store: AlertStore, as_json: bool) -> None:
    hooks = [_shown(hook) for hook in store.list_webhooks()]
    if as_json:
        print_json(hooks)
    else:
        print_table(
            ["id", "url", "format", "signed", "created"],
            [[h["id"], h["url"], h["format"], h["has_secret"], h["created_at"]] for h in hooks],
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
@db_options
def webhooks_test(store: AlertStore, id_or_url: str, timeout: float, as_json: bool) -> None:
    """Send a (signed, if it has a secret) `webhook.test` event now; show the status and time.

    The receiver's answer is not shown: a webhook URL can point anywhere the gateway can
    reach, and its answer is none of the caller's business (nor a way to read internal pages)."""
    hook = store.webhook(id_or_url)
    shown = redact_url(hook["url"])
    started = time.perf_counter()
    try:
        status = asyncio.run(_send_test(store, hook, timeout))
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


async def _send_test(store: AlertStore, hook: dict[str, Any], timeout: float) -> int:
    from spendgate.alerts.dispatcher import AlertDispatcher

    dispatcher = AlertDispatcher(store, timeout=timeout, lease_seconds=timeout + 1)
    try:
        return await dispatcher.send_test(hook)
    finally:
        await dispatcher.aclose()


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
