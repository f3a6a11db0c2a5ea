"""Airflow orchestration: DAG factories (dags), trigger-form Params generated from the pydantic
configs (params, dag_docs), deployment settings (settings), the task runtime (runtime, steps,
summary, task_runtime), training in containers (containers), the embedded local stack
(embedded) and the demo driver (demo). Nothing here knows how a model is trained."""
