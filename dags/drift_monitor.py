"""Airflow DAG: drift monitor. New data vs each champion's training data; flags retraining.

Built by ml.orchestration.dags.build_drift_monitor_dag.
"""

from ml.orchestration.dags import build_drift_monitor_dag

dag = build_drift_monitor_dag()
