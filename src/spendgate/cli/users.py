"""`spendgate users …`: dashboard and admin API users, their roles and personal tokens."""

from __future__ import annotations

import sys
from typing import Any

import click

from spendgate.access import accounts
from spendgate.access.passwords import Passwords
from spendgate.cli.support import db_options, json_option, print_json, print_table


def _password(from_stdin: bool) -> str:
    """The password from standard input (one line; its line ending is not part of it), or
    asked for twice on the terminal."""
    if from_stdin:
        text = sys.stdin.read()
        return text[:-1] if text.endswith("\n") else text
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _target(project: str | None, team: str | None) -> tuple[str, str]:
    if (project is None) == (team is None):
        raise click.UsageError("give exactly one of --project or --team")
    return ("project", project) if project is not None else ("team", team)  # type: ignore[return-value]


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (else it is asked for)."
)
project_option = click.option("--project", default=None, help="A project (the role covers it).")
team_option = click.option("--team", default=None, help="A team (the role covers every project of it).")


@click.group()
def users() -> None:
    """Users of the dashboard and the admin API: org admins, and roles on projects and teams."""


@users.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="An org admin: sees and manages everything.")
@password_stdin
@json_option
@db_options(creates=True)
def users_create(store: Any, name: str, admin: bool, password_stdin: bool, as_json: bool) -> None:
    user = accounts.create_user(store, Passwords(), name, _password(password_stdin), admin=admin)
    if as_json:
        print_json(accounts.user_as_json(user, []))
    else:
        click.echo(f"user {user.name} created{' (org admin)' if user.is_admin else ''}")


@users.command("set-password")
@click.argument("name")
@password_stdin
@json_option
@db_options
def users_set_password(store: Any, name: str, password_stdin: bool, as_json: bool) -> None:
    """A new password; the user's sessions end (their personal tokens stay)."""
    user = accounts.set_password(store, Passwords(), name, _password(password_stdin))
    if as_json:
        print_json(accounts.user_as_json(user))
    else:
        click.echo(f"password of {user.name} changed; their sessions have ended")


@users.command("grant")
@click.argument("name")
@project_option
@team_option
@click.option("--role", required=True, type=click.Choice(["viewer", "manager"]))
@json_option
@db_options
def users_grant(store: Any, name: str, project: str | None, team: str | None, role: str, as_json: bool) -> None:
    """Give NAME a role on a project or a team (replacing the one held there)."""
    kind, target = _target(project, team)
    grant = accounts.grant(store, name, kind, target, role)
    if as_json:
        print_json(accounts.grant_as_json(grant))
    else:
        click.echo(f"{name} is {role} of {kind} {target}")


@users.command("revoke")
@click.argument("name")
@project_option
@team_option
@json_option
@db_options
def users_revoke(store: Any, name: str, project: str | None, team: str | None, as_json: bool) -> None:
    """Take NAME's role on a project or a team away."""
    kind, target = _target(project, team)
    grant = store.revoke_grant(name, kind, target)
    if as_json:
        print_json(accounts.grant_as_json(grant))
    else:
        click.echo(f"{name} no longer holds a role on {kind} {target}")


@users.command("list")
@json_option
@db_options
def users_list(store: Any, as_json: bool) -> None:
    grants = store.list_grants()
    rows = [accounts.user_as_json(u, [g for g in grants if g.user == u.name]) for u in store.list_users()]
    if as_json:
        print_json(rows)
        return
    print_table(
        ["user", "admin", "disabled", "roles", "created"],
        [
            [
                r["name"],
                r["admin"],
                r["disabled"],
                ", ".join(f"{g['role']} of {k} {g[k]}" for g in r["grants"] for k in ("project", "team") if k in g),
                r["created_at"],
            ]
            for r in rows
        ],
    )


@users.command("delete")
@click.argument("name")
@json_option
@db_options
def users_delete(store: Any, name: str, as_json: bool) -> None:
    """Delete NAME with their roles, sessions and tokens."""
    user = store.delete_user(name)
    if as_json:
        print_json(accounts.user_as_json(user))
    else:
        click.echo(f"user {name} deleted")


@users.command("disable")
@click.argument("name")
@json_option
@db_options
def users_disable(store: Any, name: str, as_json: bool) -> None:
    """NAME can no longer log in; their sessions end and their tokens stop working."""
    user = store.set_user_disabled(name, True)
    if as_json:
        print_json(accounts.user_as_json(user))
    else:
        click.echo(f"user {name} disabled")


@users.command("enable")
@click.argument("name")
@json_option
@db_options
def users_enable(store: Any, name: str, as_json: bool) -> None:
    user = store.set_user_disabled(name, False)
    if as_json:
        print_json(accounts.user_as_json(user))
    else:
        click.echo(f"user {name} enabled")


# --- personal API tokens ------------------------------------------------------------------------
@users.group("tokens")
def tokens() -> None:
    """Personal API tokens (sgu-…) for the admin API: shown once, stored hashed, revocable."""


@tokens.command("create")
@click.argument("user")
@click.option("--name", "token_name", required=True, help="What the token is for (unique per user).")
@json_option
@db_options
def tokens_create(store: Any, user: str, token_name: str, as_json: bool) -> None:
    made = accounts.create_token(store, user, token_name)
    if as_json:
        print_json(made.as_json())
        return
    click.echo(f"token {token_name} created for {user}")
    click.echo(made.secret)
    click.echo("This is the only time the token is shown: store it now.", err=True)


@tokens.command("list")
@click.argument("user", required=False)
@json_option
@db_options
def tokens_list(store: Any, user: str | None, as_json: bool) -> None:
    """Tokens (of USER, or of everyone), never their secret."""
    items = store.list_tokens(user)
    if as_json:
        print_json(items)
    else:
        print_table(
            ["user", "token", "prefix", "created", "last used", "revoked"],
            [[t["user"], t["name"], t["prefix"], t["created_at"], t["last_used_at"], t["revoked"]] for t in items],
        )


@tokens.command("revoke")
@click.argument("user")
@click.argument("token_name")
@json_option
@db_options
def tokens_revoke(store: Any, user: str, token_name: str, as_json: bool) -> None:
    token = store.revoke_token(user, token_name)
    if as_json:
        print_json(token)
    else:
        click.echo(f"token {token_name} of {user} revoked")
