"""Airflow DAG: daily shop ingest and validation; feeds the validated-data assets.

Built by ml.orchestration.dags.build_shop_ingest_dag.
"""

from ml.orchestration.dags import build_shop_ingest_dag

dag = build_shop_ingest_dag()
