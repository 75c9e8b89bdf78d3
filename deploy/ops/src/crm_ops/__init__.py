"""crm-ops: what an operator needs without a developer: topics, lag, dead letters, relays."""
