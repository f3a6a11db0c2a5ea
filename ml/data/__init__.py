"""Data sources: the synthetic shop generator and adapters for external data sets."""
