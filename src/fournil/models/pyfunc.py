"""The MLflow pyfunc wrapper: a fitted `Forecaster` (feature vocabulary, booster, intervals)
that predicts from raw inputs (`fournil.features.raw_columns`), plus its verification samples.

`mlflow.pyfunc.load_model("models:/fournil-forecaster@champion").predict(raw)` returns
yhat, yhat_lower and yhat_upper. The feature code itself is the `fournil` package the model
was logged with (its version is a model tag); the API image installs the same package.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from fournil.models.estimators import Forecaster

PREDICTION_COLUMNS = ("yhat", "yhat_lower", "yhat_upper")
EXPECTED_PREFIX = "expected_"


class ForecasterModel(PythonModel):
    def load_context(self, context: Any) -> None:
        with Path(context.artifacts["forecaster"]).open("rb") as fh:
            self.forecaster: Forecaster = pickle.load(fh)
        self.verification = pd.read_parquet(context.artifacts["verification"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.forecaster.predict_raw(model_input)


def write_artifacts(forecaster: Forecaster, samples: pd.DataFrame, folder: Path) -> dict[str, str]:
    """Pickle the forecaster and write verification samples (raw inputs + its predictions)."""
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / "forecaster.pkl"
    with model_path.open("wb") as fh:
        pickle.dump(forecaster, fh, protocol=5)
    predicted = forecaster.predict_raw(samples)
    verification = samples.copy()
    for column in PREDICTION_COLUMNS:
        verification[EXPECTED_PREFIX + column] = predicted[column].to_numpy()
    verification_path = folder / "verification.parquet"
    verification.to_parquet(verification_path, index=False)
    return {"forecaster": str(model_path), "verification": str(verification_path)}


def verify(model: Any) -> tuple[bool, str]:
    """Does a loaded pyfunc reproduce its own verification samples exactly?"""
    python_model = model.unwrap_python_model()
    samples: pd.DataFrame = python_model.verification
    expected = samples[[EXPECTED_PREFIX + c for c in PREDICTION_COLUMNS]].to_numpy()
    raw = samples.drop(columns=[EXPECTED_PREFIX + c for c in PREDICTION_COLUMNS])
    got = model.predict(raw)[list(PREDICTION_COLUMNS)].to_numpy(np.float64)
    same = np.array_equal(got, expected, equal_nan=True)
    if same:
        return True, f"{len(samples)} verification samples reproduced exactly"
    worst = float(np.nanmax(np.abs(got - expected)))
    return False, f"verification samples differ (max abs difference {worst:.6g})"
