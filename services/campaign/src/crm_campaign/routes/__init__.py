"""The campaign service's HTTP routes, one router per resource (``api.py`` includes them)."""
