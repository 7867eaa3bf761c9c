"""Schema handling MLflow users complain about, through a real server: nulls in integer columns,
nullable and optional columns, booleans and categories, and JSON vs CSV giving the same answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from tests.integration.conftest import ServeFactory

pytestmark = pytest.mark.integration

BASE = {"age": 40, "income": 52000.0, "member": True, "city": "lyon", "referrer": "friend"}


@pytest.fixture(scope="module")
def url(serve: ServeFactory, mixed_bundle: Path) -> str:
    return serve(mixed_bundle) + "/v1/models/mixed/predict"


def model_answer(model: Pipeline, rows: list[dict[str, Any]]) -> list[Any]:
    """What the model itself says for the rows, built the way pandas would read them."""
    frame = pd.DataFrame(rows, columns=list(BASE))
    frame["age"] = frame["age"].astype("float64")
    frame["income"] = frame["income"].astype("float64")
    frame["referrer"] = frame["referrer"].astype(object).where(frame["referrer"].notna(), np.nan)
    return model.predict_proba(frame).tolist()


def post(url: str, rows: list[dict[str, Any]]) -> list[Any]:
    response = httpx.post(url, json={"instances": rows, "outputs": ["probabilities"]})
    assert response.status_code == 200, response.text
    probabilities: list[Any] = response.json()["probabilities"]
    return probabilities


def test_integer_column_with_missing_values(url: str, mixed_model: tuple[Pipeline, Any]) -> None:
    rows = [{**BASE, "age": None}, {**BASE, "age": 71}]
    np.testing.assert_allclose(post(url, rows), model_answer(mixed_model[0], rows), rtol=1e-9)


def test_nullable_column(url: str, mixed_model: tuple[Pipeline, Any]) -> None:
    rows = [{**BASE, "income": None}]
    np.testing.assert_allclose(post(url, rows), model_answer(mixed_model[0], rows), rtol=1e-9)


def test_optional_column_left_out(url: str, mixed_model: tuple[Pipeline, Any]) -> None:
    rows = [{k: v for k, v in BASE.items() if k != "referrer"}]
    expected = model_answer(mixed_model[0], [{**rows[0], "referrer": None}])
    np.testing.assert_allclose(post(url, rows), expected, rtol=1e-9)


def test_booleans_and_categories(url: str, mixed_model: tuple[Pipeline, Any]) -> None:
    rows = [
        {**BASE, "member": False, "city": "nice"},
        {**BASE, "member": True, "city": "paris"},
        {**BASE, "city": "marseille"},  # unseen category: the encoder ignores it, as trained
    ]
    np.testing.assert_allclose(post(url, rows), model_answer(mixed_model[0], rows), rtol=1e-9)
    bad = httpx.post(url, json={"instances": [{**BASE, "member": "maybe"}]})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["column"] == "member"


def test_json_and_csv_give_the_same_answer(url: str) -> None:
    rows = [
        BASE,
        {**BASE, "age": None, "income": None, "referrer": None},
        {**BASE, "member": False, "city": "nice", "age": 18},
    ]
    labels_json = httpx.post(url, json={"instances": rows}).json()["predictions"]
    labels_csv = httpx.post(
        url,
        content=pd.DataFrame(rows).to_csv(index=False),
        headers={"content-type": "text/csv"},
    ).json()["predictions"]
    assert labels_json == labels_csv
    mlflow_csv = httpx.post(
        url.replace("/v1/models/mixed/predict", "/invocations"),
        content=pd.DataFrame(rows).to_csv(index=False),
        headers={"content-type": "text/csv"},
    ).json()["predictions"]
    assert mlflow_csv == labels_json
