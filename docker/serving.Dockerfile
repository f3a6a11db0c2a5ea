# Online serving image: `python -m ml serve` (FastAPI + uvicorn) answering /v1/intent and
# /v1/recommend with the registry's `champion` of each family, hot-reloading when the alias moves.
# Build from the repository root:
#   docker build -f docker/serving.Dockerfile -t shopflow-serving .
#   docker run -p 8000:8000 -e MLFLOW_TRACKING_URI=http://mlflow:5000 shopflow-serving
# Models come from the MLflow registry at run time (MLFLOW_TRACKING_URI); none is baked in.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim

# CPU torch: the MiniLM models answer fast enough on CPU and the CUDA wheels would add GBs.
# The constraint torch==2.13.0 accepts the 2.13.0+cpu wheel (a local version label).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# A fixed non-root uid, so Kubernetes can check runAsNonRoot and volumes can be chowned to it.
RUN groupadd --gid 10001 shopflow \
    && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin shopflow

WORKDIR /opt/shopflow
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY ml ml
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
    && pip install --no-cache-dir -c requirements/constraints.txt -e . \
    && pip check \
    && python -c "import torch; assert torch.version.cuda is None, torch.version.cuda"
COPY params.yaml ./
# `--set @configs/<profile>.yaml` overrides, as for the other steps.
COPY configs configs
# The prediction log (params.yaml serving.prediction_log_dir, relative to WORKDIR) is the one
# place the server writes: give it to the runtime user (compose / Kubernetes mount a volume there).
RUN mkdir -p data/predictions && chown -R shopflow:shopflow data

ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PYTHONUNBUFFERED=1 \
    SHOPFLOW_PROJECT_DIR=/opt/shopflow
USER 10001:10001
EXPOSE 8000
# /healthz: the process answers (liveness); readiness (/readyz) is the orchestrator's call.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["python", "-m", "ml", "serve", "--host", "0.0.0.0", "--port", "8000"]
