"""`spendgate customers …`: a customer id's display name and billing reference, for customer
statements (``statements --by customer``)."""

from __future__ import annotations

from typing import Any

import click

from spendgate.cli.support import db_options, json_option, print_json, print_table
from spendgate.references import check_customer_id, check_text


@click.group()
def customers() -> None:
    """Names and billing references of customer ids (the x-spendgate-customer values)."""


@customers.command("set")
@click.argument("customer_id")
@click.option("--name", default=None, help="Display name on statements ('' clears).")
@click.option("--reference", default=None, help="Billing or purchase-order reference ('' clears).")
@json_option
@db_options
def customers_set(store: Any, customer_id: str, name: str | None, reference: str | None, as_json: bool) -> None:
    """Create or update CUSTOMER_ID; an option not given keeps its value."""
    fields = {}
    if name is not None:
        fields["name"] = check_text("--name", name)
    if reference is not None:
        fields["reference"] = check_text("--reference", reference)
    customer = store.set_customer(check_customer_id(customer_id), **fields)
    if as_json:
        print_json(customer.as_json())
    else:
        name, reference = customer.name or "(none)", customer.reference or "(none)"
        click.echo(f"customer {customer.id}: name {name}, reference {reference}")


@customers.command("list")
@json_option
@db_options
def customers_list(store: Any, as_json: bool) -> None:
    found = list(store.customers().values())
    if as_json:
        print_json([c.as_json() for c in found])
    else:
        print_table(["customer", "name", "reference"], [[c.id, c.name, c.reference] for c in found])
