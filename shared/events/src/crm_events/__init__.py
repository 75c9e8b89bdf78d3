"""Integration event contracts of the bank CRM."""
