"""The text-aware sequential recommender: training, full-catalog evaluation, batch scoring.

Modules: data (processed files), features (text vectors, user clusters), model (network and
inference wrapper), train (loop), baselines, metrics, evaluate, registry (MLflow pyfunc),
pipeline (steps with MLflow), recbole (Amazon/RecBole adapter), cli.
"""
