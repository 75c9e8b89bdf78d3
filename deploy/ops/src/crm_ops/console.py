"""What every ``crm-ops`` command prints with: the console, its tables, and the one way a
server that does not answer is reported."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO, TypeVar

import typer
from aiokafka.errors import KafkaError
from pymongo.errors import OperationFailure, PyMongoError
from rich.console import Console
from rich.table import Table

T = TypeVar("T")
OFF_TERMINAL_WIDTH = 100_000
"""Columns of the console when output goes to a pipe or a file: lines are never cut."""
REFUSED = (13, 18)
"""MongoDB's Unauthorized and AuthenticationFailed."""


def console_for(stream: TextIO) -> Console:
    """At a terminal, its width; elsewhere (a pipe, a file) wide enough never to cut a line."""
    return Console(width=None if stream.isatty() else OFF_TERMINAL_WIDTH)


console = console_for(sys.stdout)


def folding_table(*headers: str, **options: Any) -> Table:
    """A table that never cuts a value (ids, consumer group and topic names): on a
    terminal too narrow for it, a long value folds onto the next line of its cell."""
    table = Table(**options)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def run(work: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
    """Run ``work``; a server that does not answer is a clear error, exit code 2."""
    try:
        return asyncio.run(work())
    except KafkaError as error:
        console.print(f"[red]Kafka does not answer ({what}): {error!r}[/red]")
    except OperationFailure as error:
        if error.code not in REFUSED:
            raise
        reason = (error.details or {}).get("errmsg", error)
        console.print(
            f"[red]MongoDB refused crm-ops ({what}): {reason}. Its password: "
            "CRM_MONGO_PASSWORD, or CRM_SECRETS_DIR (source var/infra/infra.env)[/red]"
        )
    except PyMongoError as error:
        console.print(f"[red]MongoDB does not answer ({what}): {error}[/red]")
    raise typer.Exit(2)
