"""Side-effecting adapters to the external stack: MLflow tracking and the model store, S3
error diagnosis, preflight checks, credentials, DVC data versions. Knows no model internals."""
