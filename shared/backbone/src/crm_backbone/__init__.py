"""The event backbone shared by the CRM services: relay, projection engine, observability."""
