"""Monitoring: drift of newly validated data (and champion confidence) against the data the
champion was trained on."""
