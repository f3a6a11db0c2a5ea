"""Online serving (``python -m ml serve``): the registry's champions behind an HTTP API,
hot-swapped when an alias moves, with micro-batching, shadow traffic and a prediction log."""
