"""Fixtures for the control-plane tests: a router over a fresh registry per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.registry_fixtures import bundle_variant
from tests.unit.server.control.harness import Control, running_control


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    with running_control(tmp_path, inspect_timeout_seconds=120.0) as opened:
        yield opened


@pytest.fixture(scope="module")
def iris_variants(tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path) -> list[Path]:
    """Three bundles of the iris model whose content differs (an extra file each)."""
    root = tmp_path_factory.mktemp("variants")
    return [bundle_variant(iris_bundle, root / f"iris-{i}", f"salt {i}") for i in range(3)]


@pytest.fixture
def iris_example_csv(tmp_path: Path, iris_data: tuple[pd.DataFrame, pd.Series]) -> Path:
    X, _ = iris_data
    path = tmp_path / "example.csv"
    X.sample(10, random_state=1).to_csv(path, index=False)
    return path
