"""``python -m crm_backbone.keys``: the operator's steps of a master key rotation, run with
the customer service's settings (its role is the one that may rewrap, ``docs/access.md``).

With a master key ring: put the new key first in ``CRM_MASTER_KEYS`` (or
``keys/master-keys``) everywhere, ``rewrap``, then remove the old key. With OpenBao:
``rotate``, ``rewrap``, then ``retire``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from crm_backbone.dead_letter_sealing import expired_dead_letter_keys
from crm_backbone.keys.factory import subject_keys
from crm_backbone.keys.openbao import TransitKeyWrapper
from crm_backbone.settings import ServiceSettings

KEY_OWNER = "customer"
"""The service whose role rewraps and destroys keys."""

cli = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


def _transit(settings: ServiceSettings) -> TransitKeyWrapper:
    store = subject_keys(settings, KEY_OWNER)
    if not isinstance(store.wrapper, TransitKeyWrapper):
        raise typer.BadParameter("the key store is not OpenBao's: rotate the ring's keys instead")
    return store.wrapper


@cli.command()
def rewrap() -> None:
    """Wrap every live data key under the current master key (safe while services run)."""
    store = subject_keys(ServiceSettings(), KEY_OWNER)
    count = store.rewrap()
    typer.echo(f"{count} data keys rewrapped under {store.wrapper.current_id()}")


@cli.command()
def rotate() -> None:
    """OpenBao: a new version of the transit key, current from now on."""
    typer.echo(f"current: {_transit(ServiceSettings()).rotate()}")


@cli.command()
def retire() -> None:
    """OpenBao: delete the transit key's old versions for good (after ``rewrap``)."""
    wrapper = _transit(ServiceSettings())
    wrapper.retire_old_versions()
    typer.echo(f"only {wrapper.current_id()} remains")


@cli.command("expire-dead-letters")
def expire_dead_letters() -> None:
    """Destroy the keys of the months whose dead letters are all past the dead-letter
    topic's retention (idempotent: run it daily, e.g. from cron)."""
    store = subject_keys(ServiceSettings(), KEY_OWNER)
    expired = list(expired_dead_letter_keys(datetime.now(UTC)))
    for subject in expired:
        store.destroy(subject)
    typer.echo(f"destroyed (or already gone): {', '.join(expired)}")


if __name__ == "__main__":
    cli()
