"""`roadwork user ...`: dashboard accounts, changed on the server as the local account."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roadwork.cli.context import current_settings, migrated_engine
from roadwork.cli.output import JsonOpt, emit_json, local, out, table

user_app = typer.Typer(help="Dashboard users (run on the server: changes are made as the local account).",
                       no_args_is_help=True)




def _password(password_file: Path | None, prompt: str) -> str:
    """A password from a file (first line) or a hidden prompt with confirmation; never from the command line."""
    if password_file is not None:
        return password_file.read_text().splitlines()[0] if password_file.read_text() else ""
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


PasswordFileOpt = Annotated[Path | None, typer.Option(help="Read the password from this file instead of a prompt.")]
ReasonOpt = Annotated[str, typer.Option(help="Why (stored in the audit log).")]


@user_app.command("add")
def user_add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer or operator.")] = "viewer",
    password_file: PasswordFileOpt = None,
    reason: ReasonOpt = "",
) -> None:
    """Add a user (the first operator is created this way)."""
    from roadwork.platform import users

    engine = migrated_engine(current_settings())
    info = users.create_user(engine, name, _password(password_file, "Password"), role, users.local_actor(),
                             reason=reason)
    out.print(f"user {info.username} ({info.role}) added")


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """Users and their roles (never a password or a hash)."""
    from roadwork.platform import users

    items = users.list_users(migrated_engine(current_settings()))
    if as_json:
        emit_json(items)
        return
    table("users", ["name", "role", "created", "disabled"],
          [[u.username, u.role, local(u.created_at), "yes" if u.disabled else ""] for u in items])


@user_app.command("set-role")
def user_set_role(name: str, role: str, reason: ReasonOpt = "") -> None:
    """Change a user's role."""
    from roadwork.platform import users

    info = users.set_role(migrated_engine(current_settings()), name, role, users.local_actor(), reason)
    out.print(f"user {info.username} is now {info.role}")


@user_app.command("reset-password")
def user_reset_password(name: str, password_file: PasswordFileOpt = None, reason: ReasonOpt = "") -> None:
    """Set a new password (also lifts a sign-in lock-out)."""
    from roadwork.platform import users

    users.reset_password(migrated_engine(current_settings()), name, _password(password_file, "New password"),
                         users.local_actor(), reason)
    out.print(f"password of {name} reset")


@user_app.command("disable")
def user_disable(name: str, reason: ReasonOpt = "") -> None:
    """Disable a user (signed out at their next page load)."""
    from roadwork.platform import users

    users.disable_user(migrated_engine(current_settings()), name, users.local_actor(), reason)
    out.print(f"user {name} disabled")
