"""A simulated core-banking system: a synthetic bank and a deterministic feed of its events."""
