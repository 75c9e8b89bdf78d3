"""The customer service: customers, the single customer view, search, groups."""
