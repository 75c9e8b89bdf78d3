"""The campaign service layer: each command loads a campaign, decides, and saves atomically.

Commands return the campaign's new version, which a caller may pass back as
``expected_version`` (optimistic concurrency) or to the views to read its own write.

A running campaign takes one command per response, from the API and from the gateway and
attribution policies, so campaigns stay in the repository's cache and commands work on the
cached aggregate itself instead of a deep copy of it (a copy of a target list of
thousands costs more than the rest of the command). The price is care: commands on one
campaign take its lock in this process, and a command that changed the campaign and then
failed (a concurrent writer in another process won) drops it from the cache. Commands
from policies retry after such a lost race; commands from the API answer 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from crm_backbone.access import Reach
from crm_backbone.aggregate import uuid_for
from crm_backbone.application import (
    Clock,
    Created,
    IdMaker,
    ServiceApplication,
    StaleVersion,
    random_id,
    utc_now,
)
from crm_events.campaign import ResponseStage, Segment
from crm_events.common import Channel
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from crm_campaign.access import campaign_branches, require_manage, require_manager
from crm_campaign.audience import Audience
from crm_campaign.domain import Campaign, CampaignError, Conflict, JsonDict
from crm_campaign.targeting import Criteria, Selection, select_targets

T = TypeVar("T")
RETRIES = 5


class CampaignNotFound(CampaignError):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"no campaign {campaign_id}")
        self.campaign_id = campaign_id


class ConcurrentChange(Conflict):
    """Another writer saved the campaign while this command ran."""


class Outcome(NamedTuple, Generic[T]):
    """What a command decided, and the campaign's version after it."""

    value: T
    version: int


@dataclass(frozen=True)
class Started:
    """A started campaign: its frozen target list's size, exclusions and call lists."""

    version: int
    targeted: int
    excluded: dict[str, int]
    call_lists: dict[str, int]
    """Manager -> customers to phone or visit."""


class CampaignApplication(ServiceApplication):
    """Creates campaigns and runs every command on them."""

    env: ClassVar[dict[str, str]] = {
        "AGGREGATE_CACHE_MAXSIZE": "64",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }
    snapshotting_intervals = {Campaign: 500}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock = utc_now,
        new_id: IdMaker = random_id,
    ) -> None:
        super().__init__(env, clock=clock, new_id=new_id)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # Queries of the write side ----------------------------------------------------------

    def get(self, campaign_id: str) -> Campaign:
        """A copy of the campaign as its events say now."""
        with self._locked(campaign_id):
            return copy.deepcopy(self._get(campaign_id))

    def exists(self, campaign_id: str) -> bool:
        return uuid_for(Campaign, campaign_id) in self.repository

    # Commands ---------------------------------------------------------------------------
    # Those managing a campaign are checked against the caller's ``reach`` before they
    # decide (``access.require_manage``); responses and conversions are the target's.

    def create(self, campaign_id: str | None, fields: JsonDict, *, reach: Reach) -> Created:
        """A draft campaign; ``fields`` are its ``Created`` event's attributes (JSON)."""
        require_manage(reach, campaign_branches(fields.get("criteria") or {}))
        campaign_id = campaign_id or self.new_id("CMP")
        with self._locked(campaign_id):
            if self.exists(campaign_id):
                raise Conflict(f"campaign {campaign_id} already exists")
            campaign = Campaign.create(campaign_id, fields)
            self._save(campaign)
            return Created(campaign_id, campaign.version)

    def schedule(
        self,
        campaign_id: str,
        expected: int | None,
        starts_at: datetime,
        ends_at: datetime,
        *,
        reach: Reach,
    ) -> int:
        schedule = self._managed(reach, lambda c: c.schedule(starts_at, ends_at))
        return self._command(campaign_id, expected, schedule).version

    async def start(
        self, campaign_id: str, expected: int | None, audience: Audience, *, reach: Reach
    ) -> Started:
        """Select the target list from ``audience`` by the campaign's targeting and start.

        Segments, criteria and channels are fixed when the campaign is created, so the
        selection made before the command still holds when it runs. Its events record the
        actor of the command context it is awaited in.
        """
        require_manager(reach)
        campaign = await asyncio.to_thread(self.get, campaign_id)
        require_manage(reach, campaign_branches(campaign.criteria))
        segments = [Segment.model_validate(s) for s in campaign.target_segments]
        criteria = Criteria.model_validate(campaign.criteria)
        channels = [Channel(c) for c in campaign.channels]
        profiles = await audience.profiles(segments, criteria)
        # Selecting over the whole audience is CPU work: off the event loop.
        selection = await asyncio.to_thread(select_targets, segments, criteria, channels, profiles)
        return await asyncio.to_thread(
            self.start_with, campaign_id, expected, selection, reach=reach
        )

    def start_with(
        self, campaign_id: str, expected: int | None, selection: Selection, *, reach: Reach
    ) -> Started:
        """Start with a selected target list: freeze it and hand out the call lists."""
        now = self.clock()

        def start(c: Campaign) -> Started:
            c.start(selection.targets, selection.excluded, now)
            return Started(c.version, len(c.targets), dict(c.excluded), dict(c.call_lists))

        return self._command(campaign_id, expected, self._managed(reach, start)).value

    def complete(self, campaign_id: str, expected: int | None, *, reach: Reach) -> int:
        now = self.clock()
        complete = self._managed(reach, lambda c: c.complete(now))
        return self._command(campaign_id, expected, complete).version

    def cancel(self, campaign_id: str, expected: int | None, reason: str, *, reach: Reach) -> int:
        cancel = self._managed(reach, lambda c: c.cancel(reason))
        return self._command(campaign_id, expected, cancel).version

    def record_response(
        self, campaign_id: str, expected: int | None, **response: Any
    ) -> Outcome[bool]:
        """A response reported through the API; whether it was new, and the version."""
        return self._command(campaign_id, expected, lambda c: c.record_response(**response))

    def record_gateway_response(
        self,
        campaign_id: str,
        customer_id: str,
        channel: Channel,
        stage: ResponseStage,
        occurred_at: datetime,
        gateway_message_id: str,
    ) -> bool:
        """A response the channel gateway reported (idempotent); whether it was new."""
        return self._retrying(
            campaign_id,
            lambda c: c.record_response(
                customer_id, channel, stage, occurred_at, gateway_message_id=gateway_message_id
            ),
        )

    def attribute_conversion(self, campaign_id: str, customer_id: str, **signal: Any) -> bool:
        """A won opportunity or an opened product, counted if it converts a target."""
        return self._retrying(campaign_id, lambda c: c.attribute_conversion(customer_id, **signal))

    # Helpers ----------------------------------------------------------------------------

    @staticmethod
    def _managed(reach: Reach, decide: Callable[[Campaign], T]) -> Callable[[Campaign], T]:
        """``decide``, refused (403) unless ``reach`` may manage the campaign (a reach that
        may manage none is refused at once, whether the campaign exists or not)."""
        require_manager(reach)

        def managed(campaign: Campaign) -> T:
            require_manage(reach, campaign_branches(campaign.criteria))
            return decide(campaign)

        return managed

    def _retrying(self, campaign_id: str, decide: Callable[[Campaign], T]) -> T:
        for _ in range(RETRIES - 1):
            with contextlib.suppress(ConcurrentChange):
                return self._command(campaign_id, None, decide).value
        return self._command(campaign_id, None, decide).value

    def _command(
        self, campaign_id: str, expected: int | None, decide: Callable[[Campaign], T]
    ) -> Outcome[T]:
        with self._locked(campaign_id):
            campaign = self._get(campaign_id)
            if expected is not None and expected != campaign.version:
                raise StaleVersion(f"campaign {campaign_id}", expected, campaign.version)
            loaded = campaign.version
            try:
                outcome = decide(campaign)
                if campaign.version != loaded:
                    self._save(campaign)
            except BaseException:
                if campaign.version != loaded:  # the cached campaign holds unsaved events
                    self._forget(campaign_id)
                raise
            return Outcome(outcome, campaign.version)

    def _get(self, campaign_id: str) -> Campaign:
        try:
            campaign: Campaign = self.repository.get(uuid_for(Campaign, campaign_id))
        except AggregateNotFoundError:
            raise CampaignNotFound(campaign_id) from None
        return campaign

    def _forget(self, campaign_id: str) -> None:
        cache = self.repository.cache
        if cache is not None:
            with contextlib.suppress(KeyError):
                cache.get(uuid_for(Campaign, campaign_id), evict=True)

    @contextlib.contextmanager
    def _locked(self, campaign_id: str) -> Iterator[None]:
        with self._locks_lock:
            lock = self._locks.setdefault(campaign_id, threading.Lock())
        with lock:
            yield

    def _save(self, campaign: Campaign) -> None:
        try:
            self.save(campaign)
        except IntegrityError:
            raise ConcurrentChange(
                f"campaign {campaign.campaign_id} changed while this command ran: "
                "read it again and retry"
            ) from None
