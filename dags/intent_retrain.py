"""Airflow DAG: retrain the intent classifier: weekly, or when new validated utterances arrive.

The wiring is shared with recommender_retrain: see ml.orchestration.dags.build_retrain_dag.
"""

from ml.orchestration.dags import build_retrain_dag

dag = build_retrain_dag("intent")
