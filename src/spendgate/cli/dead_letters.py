"""`spendgate dead-letters list|retry`: usage events the ledger refused, set aside.

A spooled event the database will not store for what it holds (an integer past 64 bits from an
absurd upstream answer, a record damaged on disk) is set aside by the gateway, in
``dead-letters.jsonl`` beside its spool slots, so that it never blocks the events behind it nor
replays at every start. ``/healthz`` counts them. Run these commands where ``serve`` runs, with
the same settings: the spool folder is found from ``spool_dir`` and ``db``, as ``serve`` finds it.
"""

from __future__ import annotations

from pathlib import Path

import click

from spendgate.cli.support import print_json, print_table, settings_from
from spendgate.ledger.events import UsageEvent
from spendgate.ledger.spool.spool import (
    DeadLetter,
    DeadLetters,
    dead_letter,
    decode_event,
    event_fields,
    spool_location,
)
from spendgate.ledger.store import StoreError, open_store
from spendgate.redact import redact_urls
from spendgate.settings import Settings


def _dead_letters(settings: Settings) -> DeadLetters:
    root = spool_location(settings.spool_dir, settings.db)
    if root is None:
        raise click.UsageError("this database has no spool (an in-memory database), so no dead letters either")
    return DeadLetters.beside(Path(root))


@click.group("dead-letters")
def dead_letters() -> None:
    """Usage events the ledger refused, set aside so that they block nothing."""


@dead_letters.command("list")
@click.option("--db", "db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--json", "as_json", is_flag=True)
def list_command(db: str | None, config: str | None, as_json: bool) -> None:
    """What is set aside, and why."""
    letters = _dead_letters(settings_from(db, config)).read()
    if as_json:
        print_json([letter.as_json() for letter in letters])
        return
    print_table(
        ["set aside", "kind", "id", "model", "error"],
        [[letter.at, letter.kind, letter.id, letter.fields.get("model"), letter.error] for letter in letters],
    )


@dead_letters.command("retry")
@click.option("--db", "db", default=None, help="Database URL (default: SPENDGATE_DB or sqlite:///./spendgate.db).")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), help="Config file (TOML).")
@click.option("--json", "as_json", is_flag=True)
def retry_command(db: str | None, config: str | None, as_json: bool) -> None:
    """Store them now (after a fix), each within the bounds the gateway gives every event; what
    the ledger still refuses stays set aside, with the new error."""
    # Here, not at the top: pricing and the gateway's accounting are slow to import for `--help`.
    from spendgate.gateway.accounting import bounded_event, unfinished_event
    from spendgate.gateway.upstream import Upstreams
    from spendgate.ledger.spool.writer import append_isolating
    from spendgate.pricing import PriceBook, load_overrides

    settings = settings_from(db, config)
    letters = _dead_letters(settings)
    try:
        store = open_store(settings.db)
    except StoreError as exc:
        raise click.UsageError(redact_urls(str(exc))) from exc
    outcome = {"retried": 0, "stored": 0, "already_in_ledger": 0, "still_set_aside": 0}
    prices: list[PriceBook] = []

    def price_unfinished(begin: dict) -> UsageEvent:
        if not prices:  # only a begin needs prices: the price book is built for the first one
            overrides = load_overrides(settings.prices) if settings.prices else ()
            prices.append(PriceBook(overrides, genai_provider_ids=Upstreams(settings).genai_provider_ids))
        return unfinished_event(begin, prices[0])

    def retry(held: list[DeadLetter]) -> list[DeadLetter]:
        kept, events = [], []
        for letter in held:
            try:
                event = decode_event(letter.fields) if letter.kind == "event" else price_unfinished(letter.fields)
                events.append(bounded_event(event))
            except Exception as exc:
                kept.append(dead_letter(letter.kind, letter.fields, exc))
        # A database that is unreachable raises here: the file is then left as it was.
        stored, refused = append_isolating(store, events)
        written = len(stored)
        kept += [dead_letter("event", event_fields(event), exc) for event, exc in refused]
        outcome.update(
            retried=len(held),
            stored=written,
            already_in_ledger=len(events) - written - len(refused),
            still_set_aside=len(kept),
        )
        return kept

    try:
        letters.rewrite(retry)
    except Exception as exc:
        raise click.ClickException(f"nothing changed: {redact_urls(f'{type(exc).__name__}: {exc}')}") from exc
    finally:
        store.close()
    if as_json:
        print_json(outcome)
    else:
        click.echo(
            f"{outcome['retried']} retried: {outcome['stored']} stored, {outcome['already_in_ledger']} already in the"
            f" ledger, {outcome['still_set_aside']} still set aside"
        )
