"""Tiny real models shared by unit and integration tests, fitted on scikit-learn's bundled data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import ferry.model

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="session", autouse=True)
def _private_ferry_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the user's ``~/.ferry``: FERRY_HOME is a fresh folder for the
    session (and for the ``ferry`` processes tests start) unless a test sets its own. An
    empty ``~/.ferry/ferry.db`` left by a manual command once failed seven tests."""
    from ferry.config.settings import get_settings

    previous = os.environ.get("FERRY_HOME")
    os.environ["FERRY_HOME"] = str(tmp_path_factory.mktemp("ferry-home"))
    get_settings.cache_clear()
    yield
    if previous is None:
        os.environ.pop("FERRY_HOME", None)
    else:
        os.environ["FERRY_HOME"] = previous
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def iris_data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = IRIS_COLUMNS
    return X, y


@pytest.fixture(scope="session")
def iris_model(iris_data: tuple[pd.DataFrame, pd.Series]) -> LogisticRegression:
    X, y = iris_data
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="session")
def iris_bundle(
    tmp_path_factory: pytest.TempPathFactory,
    iris_model: LogisticRegression,
    iris_data: tuple[pd.DataFrame, pd.Series],
) -> Path:
    X, _ = iris_data
    dest = tmp_path_factory.mktemp("bundles") / "iris"
    ferry.model.save(
        iris_model, dest, example=X.sample(8, random_state=0), name="iris", flavor="sklearn"
    )
    return dest


def mixed_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Columns of every kind users send: int with gaps, nullable float, bool, category, optional."""
    rng = np.random.default_rng(seed)
    age = pd.array(rng.integers(18, 80, n), dtype="Int64")
    age[rng.random(n) < 0.15] = pd.NA
    income = rng.normal(50_000, 15_000, n)
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "income": income,
            "member": rng.random(n) < 0.5,
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "referrer": pd.Series(rng.choice(["ad", "friend", None], n), dtype=object),
        }
    )


@pytest.fixture(scope="session")
def mixed_model() -> tuple[Pipeline, pd.DataFrame]:
    frame = mixed_frame()
    target = (frame["member"] & (frame["city"] != "nice")).astype(int).to_numpy()
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="none"),
        OneHotEncoder(handle_unknown="ignore"),
    )
    features = ColumnTransformer(
        [
            ("num", numeric, ["age", "income"]),
            ("flag", "passthrough", ["member"]),
            ("cat", categorical, ["city", "referrer"]),
        ]
    )
    model = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=1000))])
    model.fit(frame, target)
    return model, frame


@pytest.fixture(scope="session")
def mixed_bundle(
    tmp_path_factory: pytest.TempPathFactory, mixed_model: tuple[Pipeline, pd.DataFrame]
) -> Path:
    model, frame = mixed_model
    dest = tmp_path_factory.mktemp("bundles") / "mixed"
    ferry.model.save(
        model, dest, example=frame.head(20), name="mixed", flavor="sklearn", optional=["referrer"]
    )
    return dest


# every flavor's tiny models (flv_* fixtures), shared by unit and integration tests
from tests.flavor_fixtures import *  # noqa: E402, F403

# registry backends (SQLite + folder, PostgreSQL + S3) and bundle helpers
from tests.registry_fixtures import *  # noqa: E402, F403
