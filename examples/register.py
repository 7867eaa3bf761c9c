"""Register the example bundles in the registry at FERRY_HOME, alias `production` on each.

python examples/register.py [BASE_URL [EXAMPLES_DIR]]  # what `make run` does before `ferry server`
Registering the same bundle again changes nothing (the registry is content-addressed).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import orjson

from ferry.registry import Registry

HERE = Path(__file__).resolve().parent
EXAMPLES = ("iris", "diabetes")


def main(base_url: str = "http://127.0.0.1:8000", examples: Path = HERE) -> None:
    """Register ``examples/<name>/bundle`` for each example (``examples`` may point elsewhere)."""
    with Registry.from_settings() as registry:
        for name in EXAMPLES:
            version = registry.register(examples / name / "bundle", name)
            registry.set_alias(name, "production", version.version, actor="make run")
            print(f"registered {name} version {version.version} (alias production)")
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    body = shlex.quote(orjson.dumps({"instances": [row]}).decode())
    print(f"docs: {base_url}/docs   registry: {base_url}/api/v1/models")
    print("try:")
    print(
        f"  curl -s -X POST {base_url}/v1/models/iris/predict "
        f"-H 'Content-Type: application/json' -d {body}"
    )


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
    main(url, Path(sys.argv[2]) if len(sys.argv) > 2 else HERE)
