"""Target lists from segments and criteria: matching, consent and other exclusions, channels."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from crm_campaign.targeting import Criteria, Holding, Profile, select_targets
from crm_events.campaign import Segment
from crm_events.common import Channel, CorporateTier, ValueBand
from crm_events.customer import CustomerStatus
from hypothesis import given
from hypothesis import strategies as st

HIGH = Segment(value_band=ValueBand.HIGH)
SMS_EMAIL = [Channel.SMS, Channel.EMAIL]
EVERYWHERE = frozenset({"phone", "email", "address"})


def person(customer_id: str, **overrides: Any) -> Profile:
    profile = Profile(
        customer_id=customer_id,
        status="active",
        value_band="high",
        corporate_tier=None,
        branch_id="BR-001",
        manager_id="RM-1",
        contacts=EVERYWHERE,
    )
    return replace(profile, **overrides)


def account(code: str, kind: str, balance: str | None = None, **more: Any) -> Holding:
    amount = None if balance is None else Decimal(balance)
    return Holding(code, kind, open=True, balance=amount, currency="CNY", **more)


def ids(profiles: list[Profile], criteria: Criteria | None = None, **options: Any) -> list[str]:
    segments = options.get("segments", [HIGH])
    selection = select_targets(
        segments, criteria or Criteria(), options.get("channels", SMS_EMAIL), profiles
    )
    return [t["customer_id"] for t in selection.targets]


def test_segments_match_value_band_and_the_most_specific_tier() -> None:
    profiles = [
        person("C1"),
        person("C2", value_band="medium"),
        person("K1", corporate_tier="gold"),
        person("K2", corporate_tier="key"),
        person("C3", value_band=None),
    ]
    gold = Segment(value_band=ValueBand.HIGH, corporate_tier=CorporateTier.GOLD)
    selection = select_targets([HIGH, gold], Criteria(), SMS_EMAIL, profiles)
    segments = {t["customer_id"]: t["segment"] for t in selection.targets}
    assert segments == {
        "C1": {"value_band": "high", "corporate_tier": None},
        "K1": {"value_band": "high", "corporate_tier": "gold"},
        "K2": {"value_band": "high", "corporate_tier": None},
    }
    assert ids(profiles, segments=[gold]) == ["K1"]


def test_status_branch_and_manager_criteria() -> None:
    profiles = [
        person("C1"),
        person("C2", status="dormant"),
        person("C3", branch_id="BR-002"),
        person("C4", manager_id="RM-2"),
    ]
    assert ids(profiles, Criteria(statuses=[CustomerStatus.ACTIVE])) == ["C1", "C3", "C4"]
    assert ids(profiles, Criteria(branch_ids=["BR-002"])) == ["C3"]
    assert ids(profiles, Criteria(manager_ids=["RM-1"])) == ["C1", "C2", "C3"]


def test_products_held_or_not_by_code_or_type_on_open_accounts() -> None:
    closed_fund = Holding("FUND-A", "fund", open=False)
    profiles = [
        person("C1", holdings=(account("WM-GROWTH", "wealth_management"),)),
        person("C2", holdings=(account("TD-1Y", "time_deposit"), closed_fund)),
        person("C3"),
    ]
    assert ids(profiles, Criteria(products_held=["WM-GROWTH"])) == ["C1"]
    assert ids(profiles, Criteria(products_held=["time_deposit"])) == ["C2"]
    assert ids(profiles, Criteria(products_held=["fund"])) == []
    assert ids(profiles, Criteria(products_not_held=["WM-GROWTH", "fund"])) == ["C2", "C3"]


def test_asset_bands_count_open_asset_accounts_in_the_band_currency() -> None:
    savings, loan = account("SAV", "savings", "100"), account("LOAN", "loan", "900000")
    profiles = [
        person("C1", holdings=(account("S", "savings", "30000"), account("T", "fund", "20000"))),
        person("C2", holdings=(account("SAV", "savings", "49999.99"),)),
        person("C3", holdings=(loan, savings)),
        person(
            "C4",
            holdings=(
                Holding("SAV", "savings", open=True, balance=Decimal("90000"), currency="USD"),
            ),
        ),
        person("C5", holdings=(account("SAV", "savings", "100000"),)),
    ]
    band = {"currency": "CNY", "min": "50000", "max": "100000"}
    assert ids(profiles, Criteria.model_validate({"assets": band})) == ["C1"]
    assert ids(profiles, Criteria.model_validate({"assets": {"max": "50000"}})) == [
        "C2",
        "C3",
        "C4",
    ]


def test_customers_without_consent_are_excluded_and_counted() -> None:
    profiles = [
        person("C1"),
        person("C2", consents={"sms": False, "email": False}),
        person("C3", consents={"sms": False}),
        person("C4", consents={"sms": False}, contacts=frozenset({"phone"})),
        person("C5", contacts=frozenset()),
        person("C6", consents={"sms": True, "email": False}, preferred_channel="email"),
    ]
    selection = select_targets([HIGH], Criteria(), SMS_EMAIL, profiles)
    channels = {t["customer_id"]: t["channel"] for t in selection.targets}
    assert channels == {"C1": "sms", "C3": "email", "C6": "sms"}
    assert selection.excluded == {"no_contact_details": 1, "opted_out": 2}


def test_the_preferred_channel_wins_when_usable() -> None:
    profiles = [
        person("C1", preferred_channel="email"),
        person("C2", preferred_channel="phone"),
        person("C3", preferred_channel="app"),
        person("C4", preferred_channel="email", contacts=frozenset({"phone"})),
    ]
    channels = [Channel.SMS, Channel.EMAIL, Channel.APP]
    selection = select_targets([HIGH], Criteria(), channels, profiles)
    assert {t["customer_id"]: t["channel"] for t in selection.targets} == {
        "C1": "email",
        "C2": "sms",
        "C3": "app",
        "C4": "sms",
    }
    no_details = person("C5", contacts=frozenset())
    assert ids([no_details], channels=[Channel.SMS, Channel.APP]) == ["C5"]


def test_duplicates_churned_and_restricted_tiers_are_excluded_unless_asked_for() -> None:
    profiles = [
        person("C1", merged_into="C9"),
        person("C2", status="churned"),
        person("K1", corporate_tier="restricted"),
        person("K2", corporate_tier="exit"),
        person("C3"),
    ]
    selection = select_targets([HIGH], Criteria(), SMS_EMAIL, profiles)
    assert [t["customer_id"] for t in selection.targets] == ["C3"]
    assert selection.excluded == {"churned": 1, "duplicate": 1, "restricted_tier": 2}
    win_back = Criteria(statuses=[CustomerStatus.CHURNED])
    assert ids(profiles, win_back) == ["C2"]
    restricted = Segment(value_band=ValueBand.HIGH, corporate_tier=CorporateTier.RESTRICTED)
    assert ids(profiles, segments=[restricted]) == ["K1"]


profiles_strategy = st.lists(
    st.builds(
        Profile,
        customer_id=st.text("ABC123", min_size=1, max_size=4),
        status=st.sampled_from(["prospect", "active", "dormant", "churned"]),
        value_band=st.sampled_from(["high", "medium", "low"]),
        corporate_tier=st.sampled_from([None, "gold", "restricted"]),
        branch_id=st.just("BR-001"),
        manager_id=st.sampled_from([None, "RM-1"]),
        preferred_channel=st.sampled_from([None, "sms", "email", "phone"]),
        contacts=st.frozensets(st.sampled_from(["phone", "email", "address"])),
        consents=st.dictionaries(st.sampled_from(["sms", "email", "phone"]), st.booleans()),
        merged_into=st.sampled_from([None, "X"]),
    ),
    unique_by=lambda p: p.customer_id,
    max_size=30,
)


@given(profiles_strategy, st.lists(st.sampled_from(list(Channel)), min_size=1, unique=True))
def test_every_matching_customer_is_targeted_or_excluded_never_on_an_opted_out_channel(
    profiles: list[Profile], channels: list[Channel]
) -> None:
    segments = [HIGH, Segment(value_band=ValueBand.MEDIUM)]
    selection = select_targets(segments, Criteria(), channels, profiles)
    matching = [p for p in profiles if p.value_band in ("high", "medium")]
    assert len(selection.targets) + sum(selection.excluded.values()) == len(matching)
    by_id = {p.customer_id: p for p in profiles}
    for t in selection.targets:
        assert by_id[t["customer_id"]].consents.get(t["channel"]) is not False
        assert t["channel"] in channels
    assert [t["customer_id"] for t in selection.targets] == sorted(
        t["customer_id"] for t in selection.targets
    )
