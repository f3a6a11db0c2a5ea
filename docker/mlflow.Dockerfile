# MLflow tracking server: PostgreSQL backend store, artifacts on S3 (AWS, MinIO), served.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim
RUN pip install --no-cache-dir "mlflow==3.17.2" psycopg2-binary boto3
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
