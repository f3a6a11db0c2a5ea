# Airflow image with the `ml` package: api-server, scheduler, dag-processor, triggerer and
# Celery workers all run from it. Build from the repository root:
#   docker build -f docker/airflow.Dockerfile -t shopflow-airflow .
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

# CPU torch keeps this image small; GPU training runs in the trainer image or on a GPU worker
# built with TORCH_INDEX_URL pointing at a CUDA wheel index.
ARG TORCH_INDEX_URL=""
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
USER airflow

WORKDIR /opt/shopflow
COPY --chown=airflow:root requirements/constraints.txt requirements/constraints.txt
COPY --chown=airflow:root pyproject.toml README.md ./
COPY --chown=airflow:root ml ml
RUN if [ -n "${TORCH_INDEX_URL}" ]; then \
        pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.13.0; \
    fi \
    && pip install --no-cache-dir -c requirements/constraints.txt -e . \
    # The base image pins its own Airflow; keep it and fail the build on a conflict.
    && pip check

COPY --chown=airflow:root dags dags
COPY --chown=airflow:root expectations expectations
COPY --chown=airflow:root params.yaml dvc.yaml dvc.lock ./
COPY --chown=airflow:root .dvc/config .dvc/config

ENV SHOPFLOW_PROJECT_DIR=/opt/shopflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/shopflow/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GX_ANALYTICS_ENABLED=false
