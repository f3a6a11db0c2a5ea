# Trainer image: the same `python -m ml` steps on a CUDA PyTorch base, for the training task
# run as a container (DockerOperator) or a pod (KubernetesPodOperator with a GPU request).
#   docker build -f docker/trainer.Dockerfile -t shopflow-trainer .
#   docker run --gpus all shopflow-trainer train intent
# The DAG's train task (SHOPFLOW_TRAIN_RUNNER=docker|kubernetes, ml/orchestration/containers.py) mounts the
# shared project folder (or its data/models/reports volumes) over WORKDIR, which is
# SHOPFLOW_TRAINER_PROJECT_DIR's default, and runs `python -m ml train <family> --params ...
# --output-json reports/...` there; the worker reads that file afterwards. A whole project
# folder mounted there also supplies the `ml` code (the editable install points at WORKDIR).
ARG CUDA_BASE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${CUDA_BASE}

WORKDIR /opt/shopflow
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY ml ml
# The base image already has CUDA torch 2.13.0; the constraint keeps pip from replacing it.
RUN pip install --no-cache-dir -c requirements/constraints.txt -e . \
    && python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
COPY expectations expectations
COPY params.yaml dvc.yaml ./
# Run overrides may name a profile (`--set @configs/bitext.yaml`).
COPY configs configs

ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    GX_ANALYTICS_ENABLED=false \
    SHOPFLOW_PROJECT_DIR=/opt/shopflow
ENTRYPOINT ["python", "-m", "ml"]
CMD ["--help"]
