"""Airflow DAG: retrain the recommender: weekly, or when new validated catalog and events arrive.

The wiring is shared with intent_retrain: see ml.orchestration.dags.build_retrain_dag.
"""

from ml.orchestration.dags import build_retrain_dag

dag = build_retrain_dag("recommender")
