"""Preprocessing of validated data into model-ready Parquet files."""
