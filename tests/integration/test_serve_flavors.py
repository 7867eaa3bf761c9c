"""Every flavor, saved as a bundle and served by a real ``ferry serve`` process, answers over
HTTP exactly what the original model answers in process."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

import ferry.model
from tests.flavor_cases import CASES, assert_same
from tests.integration.conftest import served

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case_name", list(CASES))
def test_served_flavor_matches_the_model(
    case_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    case = CASES[case_name](request)
    ferry.model.save(case.source, tmp_path / "bundle", example=case.example, name="m")
    outputs = ["predictions"] if case.probabilities is None else ["predictions", "probabilities"]
    # an MLflow pyfunc (cloudpickled code) and a custom class are code: refused without --trust
    trust = ["--trust"] if case_name in ("mlflow_pyfunc", "custom_predictor") else []
    with served(tmp_path / "bundle", *trust, log=tmp_path / "serve.log") as url:
        ready = httpx.get(f"{url}/readyz").json()
        assert ready["models"] == {"m:1": "passed"}
        response = httpx.post(
            f"{url}/v1/models/m/predict",
            json={"inputs": case.example.to_dict("list"), "outputs": outputs},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        tolerance = json_tolerance(case.predictions, case.tolerance)
        assert_same(answer["predictions"], case.predictions, tolerance)
        if case.probabilities is not None:
            assert_same(
                answer["probabilities"],
                case.probabilities,
                json_tolerance(case.probabilities, case.tolerance),
            )
        mlflow = httpx.post(
            f"{url}/invocations",
            json={"dataframe_records": case.example.to_dict("records")},
            timeout=30,
        )
        assert mlflow.status_code == 200, mlflow.text
        assert_same(mlflow.json()["predictions"], case.predictions, tolerance)


def json_tolerance(values: np.ndarray, tolerance: float) -> float:
    """float32 outputs travel as their shortest decimal form: equal at float32 precision."""
    return max(tolerance, 1e-6) if np.asarray(values).dtype == np.float32 else tolerance
