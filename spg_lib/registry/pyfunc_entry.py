"""MLflow "models from code" entry point of `spg register`: copied into each logged model and executed on load.

It only names the wrapper class (no pickled object in the model); `spg_lib` must be importable where it loads.
"""

import mlflow.models

from spg_lib.registry.pyfunc import SPGDiffusionModel

mlflow.models.set_model(SPGDiffusionModel())
