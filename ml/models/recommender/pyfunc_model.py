"""Models-from-code entry of the registered recommender: MLflow stores this file with the model
and runs it at load time (no pickled Python object in the artifact)."""

import mlflow

from ml.models.recommender.pyfunc import RecommenderPyfunc

mlflow.models.set_model(RecommenderPyfunc())
