"""The fault suite: the customer service's pipeline on servers of its own, with faults injected.

Run it with ``make test-faults``; see README.md ("Fault suite") and ``test_faults.py``.
"""
