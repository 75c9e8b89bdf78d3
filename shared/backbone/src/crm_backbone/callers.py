"""Who is calling an API: the principal its bearer token proves, and what it may reach.

Every route of the book takes a :class:`Caller` through one of two FastAPI dependencies:
:data:`Who` for a command (the caller may change the book: checked when the command
runs, :meth:`Caller.run`), :data:`Reader` for a read (the caller may read the book:
checked before the route runs). Both resolve the token's principal to its
:class:`~crm_backbone.access.Reach` through the organisation read model
(:class:`PositionLookup`), so a route hands its queries and commands ``caller.reach``
and never looks at roles itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ParamSpec, Protocol, TypeVar

from fastapi import Depends, FastAPI, Request
from pymongo.asynchronous.database import AsyncDatabase

from crm_backbone.access import Reach, Surface, reach_for, require_command, require_read
from crm_backbone.context import command_context
from crm_backbone.http import CorrelationId
from crm_backbone.identity import (
    Authenticated,
    TokenValidator,
    install_authentication,
    token_validator,
)
from crm_backbone.organisation import OrganisationDirectory, Position
from crm_backbone.principal import Principal
from crm_backbone.projection import Document
from crm_backbone.settings import ServiceSettings

if TYPE_CHECKING:
    from crm_backbone.read_audit import ReadRecorder

P = ParamSpec("P")
T = TypeVar("T")


class PositionLookup(Protocol):
    """Where the organisation places a staff member (the service's org read model,
    :class:`crm_backbone.organisation.OrganisationDirectory`)."""

    async def position_of(self, staff_id: str) -> Position | None: ...


class CachedPositions:
    """Positions remembered for ``seconds`` (placed or not), so a request does not read
    the org read model each time: an HR change (a move, a leaver) reaches access
    decisions at most ``seconds`` later (docs/access.md)."""

    MAX_REMEMBERED = 10_000
    """Beyond this many staff members, the cache starts again empty."""

    def __init__(
        self,
        positions: PositionLookup,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._positions = positions
        self._seconds = seconds
        self._clock = clock
        self._remembered: dict[str, tuple[Position | None, float]] = {}

    async def position_of(self, staff_id: str) -> Position | None:
        now = self._clock()
        remembered = self._remembered.get(staff_id)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        position = await self._positions.position_of(staff_id)
        if len(self._remembered) >= self.MAX_REMEMBERED:
            self._remembered.clear()
        self._remembered[staff_id] = (position, now + self._seconds)
        return position


@dataclass(frozen=True)
class Caller:
    """The proven caller of one request: the actor its events record, the client it came
    through (the token's ``azp``), its reach, and the flow it belongs to
    (``X-Correlation-Id``)."""

    actor: str
    reach: Reach
    client: str | None = None
    correlation_id: str | None = None
    principal: Principal | None = None
    surface: Surface = Surface.BOOK
    """The kind of endpoint its commands are on: the book, or erasure."""

    async def run(self, command: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a (blocking) application command in a thread, as this caller; a caller
        that may not change the book is refused (403) before anything runs."""
        require_command(self.reach, self.surface)

        def as_caller() -> T:
            with command_context(self.actor, self.correlation_id, client=self.client):
                return command(*args, **kwargs)

        return await asyncio.to_thread(as_caller)

    async def run_async(
        self, command: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await an application command that reads before it decides, as this caller (the
        blocking steps it runs in threads inherit the caller); refused like :meth:`run`."""
        require_command(self.reach, self.surface)
        with command_context(self.actor, self.correlation_id, client=self.client):
            return await command(*args, **kwargs)


@dataclass(frozen=True)
class Authentication:
    """How an app proves its callers (``validator``: None when no identity provider is
    configured, and every call is refused) and places them in the organisation; ``reads``
    records the personal data they read somewhere other than the service's Kafka topic
    (a unit test's :class:`~crm_backbone.read_audit.RecordedReads`)."""

    validator: TokenValidator | None
    positions: PositionLookup
    reads: ReadRecorder | None = None

    @classmethod
    def configured(
        cls, settings: ServiceSettings, database: AsyncDatabase[Document]
    ) -> Authentication:
        """The identity provider ``settings`` name, and the org read model of ``database``
        (its answers remembered for ``settings.position_cache_s``)."""
        positions: PositionLookup = OrganisationDirectory(database)
        if settings.position_cache_s > 0:
            positions = CachedPositions(positions, settings.position_cache_s)
        return cls(token_validator(settings), positions)

    def install(self, app: FastAPI) -> None:
        install_authentication(app, self.validator)
        app.state.positions = self.positions
        if self.reads is not None:
            app.state.read_audit = self.reads


async def position_of(request: Request, principal: Principal) -> Position | None:
    """Where the organisation places ``principal``: nowhere for a service account, or a
    person whose token names no staff id."""
    if principal.service_account or principal.staff_id is None:
        return None
    positions: PositionLookup = request.app.state.positions
    return await positions.position_of(principal.staff_id)


async def request_caller(
    request: Request, principal: Authenticated, x_correlation_id: CorrelationId = None
) -> Caller:
    """FastAPI dependency: the caller of a request, as its bearer token proves it and the
    organisation places it."""
    reach = reach_for(principal, await position_of(request, principal))
    return Caller(principal.actor, reach, principal.client_id, x_correlation_id, principal)


def reading_caller(caller: Annotated[Caller, Depends(request_caller)]) -> Caller:
    """FastAPI dependency: the caller of a read of the book (403 for a role that may not)."""
    require_read(caller.reach)
    return caller


Who = Annotated[Caller, Depends(request_caller)]
"""The caller of a command."""

Reader = Annotated[Caller, Depends(reading_caller)]
"""The caller of a read of the book."""
