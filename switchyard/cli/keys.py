"""``switchyard keys``: make API keys for the config file, or the hash of one."""

from __future__ import annotations

from typing import Annotated

import typer

from switchyard.cli.common import fail

keys_app = typer.Typer(
    help="Make API keys for the config file: a fresh key, or the hash of one (so the config "
    "holds key_hash and the key itself is never on the gateway's machine).",
    no_args_is_help=True,
)


@keys_app.command("new")
def keys_new() -> None:
    """Print a fresh random API key (sk-sy-...).

    Give it to its user, and put it in the environment variable named by a static key's
    key_env, or its hash (switchyard keys hash) in key_hash. Dynamic keys are made with
    POST /admin/keys instead."""
    from switchyard.gateway.tenancy.keys import new_key

    typer.echo(new_key())


@keys_app.command("hash")
def keys_hash(
    secret_env: Annotated[
        str,
        typer.Option(
            help="Environment variable holding the server secret keys are hashed with "
            "(auth.secret_env; the gateway must run with the same value)."
        ),
    ] = "SWITCHYARD_KEY_SECRET",
) -> None:
    """Read an API key from standard input and print its hash, for a static key's key_hash.

    Example: switchyard keys new | tee alice.key | switchyard keys hash"""
    import os
    import sys

    from switchyard.gateway.tenancy.keys import PREFIX, hash_key

    secret = os.environ.get(secret_env)
    if not secret:
        raise fail(f"environment variable {secret_env} is not set")
    key = sys.stdin.readline().strip()
    if not key.startswith(PREFIX):
        raise fail(f"expected a key starting with '{PREFIX}' on standard input")
    typer.echo(hash_key(secret.encode(), key))


def register(app: typer.Typer) -> None:
    """Add the ``switchyard keys`` group to the main app."""
    app.add_typer(keys_app, name="keys")
