"""The campaign service's HTTP routes, one module per resource."""
