"""Hostile custom predictors for the sandbox tests: each reports what it could reach."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import load_iris

# one class per file: save() bundles the file the class lives in
SNOOP = """
import os, socket
from pathlib import Path

SECRET_FILE = {secret_file!r}
PORT = {port}
STRICT = {strict!r}  # load() fails when it reached anything: an upload then answers 422


def snoop():
    found = []
    keys = ("FERRY_JWT_SECRET", "FERRY_AUTH_SECRET", "FERRY_DATABASE_URL", "AWS_SECRET_ACCESS_KEY")
    for key in keys:
        if os.environ.get(key):
            found.append("env:" + key)
    try:
        Path(SECRET_FILE).read_bytes()
        found.append("file:auth.secret")
    except OSError:
        pass
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
        found.append("net:connect")
    except OSError:
        pass
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            if s.getsockname()[1]:
                found.append("net:bind")
    except OSError:
        pass
    return "|".join(found) or "nothing"


class Snoop:
    def load(self, model_dir):
        self.seen = snoop()
        if STRICT and self.seen not in ("nothing", "net:bind"):
            raise RuntimeError("reached " + self.seen)

    def predict(self, frame):
        return [self.seen + "/" + snoop()] * len(frame)
"""

BOMB = """
import os


class Bomb:
    def load(self, model_dir):
        if not os.environ.get("FERRY_TEST_DISARMED"):  # set while the test saves the bundle
            self.blob = bytearray(3_000_000_000)

    def predict(self, frame):
        return [0] * len(frame)
"""

IRIS = """
import numpy as np


class Iris:
    def predict(self, frame):
        x = frame.to_numpy()
        return np.where(x[:, 2] < 2.5, 0, np.where(x[:, 3] < 1.75, 1, 2))
"""


def iris_example(folder: Path) -> Path:
    frame = load_iris(as_frame=True).frame.drop(columns="target").head(5)
    path = folder / "example.csv"
    frame.to_csv(path, index=False)
    return path


def write_predictor(folder: Path, source: str, **values: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictor.py"
    if values:
        source = source.format(**{"strict": False, **values})
    path.write_text(source, encoding="utf-8")
    return path


def frame_rows(n: int = 3) -> pd.DataFrame:
    return load_iris(as_frame=True).frame.drop(columns="target").head(n)
