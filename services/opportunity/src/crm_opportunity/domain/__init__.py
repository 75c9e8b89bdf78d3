"""Leads, opportunities and needs (complaints included), and the rules a bank applies to them.

One module per aggregate (``lead``, ``opportunity``, ``need``) and what they share
(``base``). Command methods check the rules and then trigger events (the
``@event``-decorated private methods, whose bodies are how each event changes the state).
Event attributes are plain JSON values named as in the published contract
(``crm_events.opportunity``), so ``publication.py`` maps each event to its payload field
by field.

Events and snapshots stored before this package was split name their classes in the
module ``crm_opportunity.domain`` (``crm_opportunity.domain:Lead.Captured``); the topics
registered here keep them resolving to the classes' new homes.
"""

from __future__ import annotations

from eventsourcing.utils import register_topic

from crm_opportunity.domain import lead, need, opportunity

for _moved in (lead.Lead, lead.LeadStatus, need.Need, opportunity.Opportunity):
    register_topic(f"{__name__}:{_moved.__qualname__}", _moved)
