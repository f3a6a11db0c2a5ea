"""Foundations every layer uses: the one configuration (config/), data schemas, errors, the
model-family table, metric and statistics definitions, progress reporting. Imports nothing
else from ``ml``."""
