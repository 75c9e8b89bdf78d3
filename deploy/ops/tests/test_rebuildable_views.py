"""Every read model a service keeps can be rebuilt by ``crm-ops rebuild``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from crm_backbone.runtime import ServiceHandle
from crm_campaign.bootstrap import CampaignSettings
from crm_campaign.bootstrap import bootstrap as campaign
from crm_contactlog.bootstrap import ContactLogSettings
from crm_contactlog.bootstrap import bootstrap as contact_log
from crm_customer.bootstrap import CustomerSettings
from crm_customer.bootstrap import bootstrap as customer
from crm_opportunity.bootstrap import OpportunitySettings
from crm_opportunity.bootstrap import bootstrap as opportunity
from crm_ops.views_commands import VIEWS


@pytest.mark.parametrize(
    ("service", "wire"),
    [
        ("customer", lambda d: customer(CustomerSettings(data_dir=d))),
        ("opportunity", lambda d: opportunity(OpportunitySettings(data_dir=d))),
        ("campaign", lambda d: campaign(CampaignSettings(data_dir=d))),
        ("contact-log", lambda d: contact_log(ContactLogSettings(data_dir=d))),
    ],
)
async def test_every_projection_a_service_runs_is_rebuildable(
    service: str, wire: Callable[[Path], ServiceHandle], tmp_path: Path
) -> None:
    handle = wire(tmp_path)
    try:
        kept = {
            (projection.name, type(projection))
            for projection in handle.runtime.components.projections
        }
    finally:
        await handle.close()
    rebuildable = {
        (view.load().name, type(view.load())) for view in VIEWS.values() if view.service == service
    }
    assert kept == rebuildable
