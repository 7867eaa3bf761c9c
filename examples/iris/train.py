"""Fit a LogisticRegression on scikit-learn's iris data and save it as a Ferry bundle.

python examples/iris/train.py [DEST]     # DEST defaults to examples/iris/bundle
ferry serve examples/iris/bundle
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import ferry.model

HERE = Path(__file__).resolve().parent
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main(dest: Path = HERE / "bundle") -> Path:
    iris = load_iris(as_frame=True)
    X = iris.data.set_axis(COLUMNS, axis=1)
    y = iris.target.map(dict(enumerate(iris.target_names)))  # species names as labels
    model = LogisticRegression(max_iter=1000).fit(X, y)
    example = X.groupby(y).head(2)  # two rows of each species
    manifest = ferry.model.save(
        model,
        dest,
        example=example,
        name="iris",
        description="LogisticRegression on scikit-learn's iris data; predicts the species.",
        overwrite=True,
    )
    print(f"saved {manifest.name} ({manifest.flavor}) to {dest}")
    return dest


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "bundle")
