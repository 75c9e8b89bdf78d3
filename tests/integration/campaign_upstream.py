"""What the campaign test's other systems report: the channel gateway's story of each
message (sent, delivered, opened, responded, opted out) and the sales side's conversions
(opportunities won, offered products opened), with what each target reached."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_events import channel_gateway as gw
from crm_events import core_banking as cb
from crm_events import opportunity as op
from crm_events.common import Channel
from crm_events.envelope import KafkaRecord
from crm_events.registry import EventPayload
from crm_events.topics import Service

from tests.integration.campaign_scenario import DAY, OFFERED, Expected, Streams, cny


@dataclass
class Outcome:
    """What each target reached, as the test sends it."""

    reached: dict[str, dict[str, datetime]] = field(default_factory=lambda: defaultdict(dict))
    revenue: dict[str, Decimal] = field(default_factory=dict)
    opt_outs: set[tuple[str, str]] = field(default_factory=set)

    def reach(self, customer: str, stage: str, moment: datetime) -> None:
        self.reached[customer].setdefault(stage, moment)


def gateway_message(
    gateway: Streams,
    outcome: Outcome,
    campaign_id: str,
    customer: str,
    expected: Expected,
    k: int,
    *,
    skip_sent: bool = False,
) -> list[tuple[str, KafkaRecord]]:
    """One message's story as the gateway reports it; what the target reached."""
    channel = Channel(expected.targets[customer]["channel"])
    message = f"MSG-{campaign_id}-{customer}"
    story: list[tuple[type[EventPayload], str, timedelta]] = [(gw.MessageSent, "sent", timedelta())]
    if k % 10 != 0:
        story.append((gw.MessageDelivered, "delivered", timedelta(minutes=2)))
        if k % 2 == 0:
            story.append((gw.MessageOpened, "opened", timedelta(days=1, hours=k % 7)))
            if k % 3 == 0:
                story.append((gw.MessageResponded, "responded", timedelta(days=2)))
    if k % 16 == 1:
        story.append((gw.RecipientOptedOut, "opted_out", timedelta(days=2, hours=3)))
        outcome.opt_outs.add((customer, channel.value))
    records = []
    for model, stage, after in story:
        moment = DAY + after + timedelta(minutes=k)
        outcome.reach(customer, stage, moment)
        if skip_sent and stage == "sent":
            gateway.versions[message] += 1  # sent before the start, with version 1
            continue
        fields = {"campaign_id": campaign_id, "customer_id": customer, "channel": channel}
        payload = model.model_validate(fields | {"occurred_at": moment})
        records.append(gateway.add(Service.CHANNEL_GATEWAY, message, payload))
    return records


def gateway_reports(
    campaign_id: str, messaged: list[str], stranger: str, expected: Expected, outcome: Outcome
) -> Streams:
    """The gateway's records after the start: the rest of every message's story, some sends
    re-reported under another message id, and a message to ``stranger`` (not a target)."""
    gateway = Streams()
    for k, customer in enumerate(messaged):
        if k >= 15:
            gateway_message(gateway, outcome, campaign_id, customer, expected, k)
        else:  # the rest of the early messages' story
            gateway_message(gateway, outcome, campaign_id, customer, expected, k, skip_sent=True)
    for k, customer in list(enumerate(messaged))[::9]:  # re-reported under another id
        gateway.add(
            Service.CHANNEL_GATEWAY,
            f"MSG-R-{campaign_id}-{customer}",
            gw.MessageSent(
                campaign_id=campaign_id,
                customer_id=customer,
                channel=Channel(expected.targets[customer]["channel"]),
                occurred_at=DAY + timedelta(minutes=k),
            ),
        )
    gateway.add(
        Service.CHANNEL_GATEWAY,
        f"MSG-X-{stranger}",
        gw.MessageSent(
            campaign_id=campaign_id, customer_id=stranger, channel=Channel.SMS, occurred_at=DAY
        ),
    )
    return gateway


def conversions(suffix: str, targets: list[str], start_time: datetime, outcome: Outcome) -> Streams:
    """Won opportunities (one customer's twice, one another campaign's, two before the
    start) and opened accounts (the offered product or another); what they convert."""
    deals = Streams()
    converting = targets[2::4]
    assert len(converting) >= 21
    won, opened, early_win, double_win, other_campaign = (
        converting[:10],
        converting[10:14],
        converting[14:16],
        converting[16],
        converting[17],
    )
    for n, customer in enumerate([*won, double_win, double_win, other_campaign, *early_win]):
        rank = converting.index(customer)  # both wins of one customer are worth the same
        campaign = "CMP-SOMEONE-ELSE" if customer == other_campaign else None
        won_at = start_time - timedelta(days=1) if customer in early_win else None
        value = won_opportunity(deals, f"OPP-{suffix}-{n}", customer, rank, campaign, won_at)
        if customer in (*won, double_win) and customer not in outcome.revenue:
            outcome.revenue[customer] = value
            outcome.reach(customer, "converted", datetime.now(UTC))
    for n, customer in enumerate([*opened, *converting[18:21]]):
        product = OFFERED if customer in opened else "CARD-GOLD"
        deals.add(
            Service.CORE_BANKING,
            f"NEW-{suffix}-{n}",
            cb.AccountOpened(
                customer_id=customer,
                product_code=product,
                product_name=product,
                product_type=cb.ProductType.WEALTH_MANAGEMENT,
                currency="CNY",
                branch_id="BR-001",
                opened_on=date(2026, 3, 5),
            ),
        )
        if product == OFFERED:
            outcome.reach(customer, "converted", datetime.now(UTC))
    return deals


def won_opportunity(
    deals: Streams,
    opportunity: str,
    customer: str,
    rank: int,
    campaign: str | None,
    won_at: datetime | None,
) -> Decimal:
    """An opportunity created, its value raised for one rank in three, then won; its value."""
    value = Decimal(10_000 * (rank % 5 + 1))
    deals.add(
        Service.OPPORTUNITY,
        opportunity,
        op.OpportunityCreated(
            customer_id=customer,
            title="Wealth plan",
            products=[OFFERED],
            probability=30,
            expected_value=cny(value),
            start_date=date(2026, 3, 2),
            expected_close_date=date(2026, 4, 30),
            manager_id="RM-0001",
            branch_id="BR-001",
            source=op.LeadSource.CAMPAIGN,
            campaign_id=campaign,
        ),
    )
    if rank % 3 == 0:
        deals.add(
            Service.OPPORTUNITY,
            opportunity,
            op.OpportunityExpectedValueChanged(
                customer_id=customer,
                previous_expected_value=cny(value),
                expected_value=cny(value * 2),
            ),
        )
        value *= 2
    deals.add(
        Service.OPPORTUNITY,
        opportunity,
        op.OpportunityStageChanged(
            customer_id=customer,
            previous_stage=op.OpportunityStage.NEGOTIATION,
            stage=op.OpportunityStage.CLOSED_WON,
            probability=100,
        ),
        time=won_at,
    )
    return value
