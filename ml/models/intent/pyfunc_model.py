"""Models-from-code entry of the registered intent classifier: MLflow stores this file with the
model and runs it at load time (no pickled Python object in the artifact)."""

import mlflow

from ml.models.intent.pyfunc import IntentPyfunc

mlflow.models.set_model(IntentPyfunc())
