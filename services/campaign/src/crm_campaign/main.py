"""Entry point: ``crm-campaign serve`` (the API) and ``work`` (relay and consumers)."""

from __future__ import annotations

from crm_backbone.serve import service_cli
from fastapi import FastAPI

from crm_campaign.api import create_app
from crm_campaign.bootstrap import CampaignSettings, bootstrap

DEFAULT_PORT = 8103


def _create(run_workers: bool) -> FastAPI:
    return create_app(bootstrap(), run_workers=run_workers)


cli = service_cli("campaign", DEFAULT_PORT, _create, CampaignSettings(), bootstrap=bootstrap)
