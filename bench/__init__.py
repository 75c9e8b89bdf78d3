"""``make bench``: the limits, the usual approach and ours, measured on the genuine servers.

``bench/run.py`` is the entry point; ``suite`` runs the phases, ``bank`` makes the
synthetic bank, ``limits`` measures bare Kafka and MongoDB, ``pipeline`` the relay,
projection, baseline and rebuild, ``service`` and ``http_load`` the customer service in a
process of its own, and ``report`` prints the table and writes the JSON (``var/bench/``).
"""
