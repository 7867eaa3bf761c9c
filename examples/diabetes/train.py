"""Fit a scaling + Ridge regression pipeline on scikit-learn's diabetes data; save a bundle.

python examples/diabetes/train.py [DEST]     # DEST defaults to examples/diabetes/bundle
ferry serve examples/diabetes/bundle
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import ferry.model

HERE = Path(__file__).resolve().parent


def main(dest: Path = HERE / "bundle") -> Path:
    # scaled=False: raw measurements (age in years, sex 1/2, bmi ...); the pipeline scales them
    X, y = load_diabetes(return_X_y=True, as_frame=True, scaled=False)
    model = Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=1.0))]).fit(X, y)
    manifest = ferry.model.save(
        model,
        dest,
        example=X.head(5),
        name="diabetes",
        description="StandardScaler + Ridge on scikit-learn's diabetes data; predicts progression.",
        overwrite=True,
    )
    print(f"saved {manifest.name} ({manifest.flavor}) to {dest}")
    return dest


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "bundle")
