"""``ferry predict`` (a server or a local model) and ``ferry check`` (replay a bundle's example
and the model's saved regression cases against a server)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ferry.client import Client
    from ferry.model.example import Mismatch
    from ferry.model.signature import Batch, Signature
    from ferry.monitoring.cases import Case

_META_KEYS = ("model", "version", "request_id")
_MAX_MISMATCHES = 10


def predict(
    target: Annotated[
        str, typer.Argument(help="Server URL (http://...), or a bundle / model file to load here.")
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            "-d",
            exists=True,
            dir_okay=False,
            help="Rows to predict: a .json or .csv file.",
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Model name (default: the server's only model)."),
    ] = None,
    output: Annotated[
        list[str] | None,
        typer.Option("--output", "-o", help="Output to return: label, probabilities (repeatable)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 30.0,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="A local model: load it even if the scanner refuses it (a pickle importing "
            "names outside the allowlist, or a code model such as file.py:Class).",
        ),
    ] = False,
) -> None:
    """Predict the rows in DATA with a running server (TARGET is a URL) or a local model
    (scanned first, like ferry serve: code models and refused pickles need --trust)."""
    if target.startswith(("http://", "https://")):
        from ferry.client import Client

        with Client(target, timeout=timeout) as client:
            model_name = name or only_model(client)
            signature = client.model(model_name).signature
            batch = read_batch(data, signature)
            answer: dict[str, Any] = dict(
                client.predict(model_name, batch_columns(batch, signature), outputs=output)
            )
    else:
        answer, signature, batch = predict_locally(Path(target), data, name, output, trust=trust)
    if as_json:
        from ferry.cli.output import show_json

        show_json(answer)
        return
    show_predictions(answer, signature, batch)


def predict_locally(
    path: Path, data: Path, name: str | None, output: list[str] | None, *, trust: bool = False
) -> tuple[dict[str, Any], Signature, Batch]:
    """Load the model in this process (scanned first) and answer as the native route would."""
    from ferry.model import load
    from ferry.model.example import outputs_to_json

    model = load(path, trust=trust)
    batch = read_batch(data, model.signature)
    outputs = model.resolve_outputs(output)
    answer: dict[str, Any] = outputs_to_json(model.predict_outputs(batch, outputs))
    answer.update(model=name or model.name, version=model.version)
    return answer, model.signature, batch


def only_model(client: Client) -> str:
    from ferry.errors import InvalidRequest

    names = sorted({info.name for info in client.models()})
    if len(names) != 1:
        raise InvalidRequest(
            f"{client.base_url} serves {len(names)} models {names}; choose one with --name",
            models=names,
        )
    return names[0]


def read_batch(path: Path, signature: Signature) -> Batch:
    """A data file -> a validated batch, by the same rules as the server's routes.

    CSV: a header row, cells parsed by column dtype. JSON: ``{"instances": rows}``,
    ``{"inputs": columns or rows}``, a list of rows, or pandas ``split`` (``columns`` + ``data``);
    MLflow's ``dataframe_split`` / ``dataframe_records`` are read too.
    """
    from ferry.server.serving.inference import batch_from_csv, parse_json

    body = path.read_bytes()
    if path.suffix.lower() == ".csv":
        return batch_from_csv(body, signature)
    return batch_from_json(parse_json(body), signature)


def batch_from_json(payload: object, signature: Signature) -> Batch:
    from ferry.errors import InvalidRequest
    from ferry.model.validation import batch_from_columns, batch_from_records

    if isinstance(payload, list):
        return batch_from_records(payload, signature)
    if isinstance(payload, dict):
        if "dataframe_split" in payload:
            payload = payload["dataframe_split"]
        elif "dataframe_records" in payload:
            return batch_from_records(payload["dataframe_records"], signature)
    if isinstance(payload, dict):
        if "instances" in payload:
            return batch_from_records(payload["instances"], signature)
        if "inputs" in payload:
            inputs = payload["inputs"]
            if isinstance(inputs, dict):
                return batch_from_columns(inputs, signature)
            return batch_from_records(inputs, signature)
        if isinstance(payload.get("columns"), list) and isinstance(payload.get("data"), list):
            columns, rows = payload["columns"], payload["data"]
            return batch_from_records(
                [_zip_row(columns, row, n) for n, row in enumerate(rows)], signature
            )
    raise InvalidRequest(
        "the data file must hold {'instances': rows}, {'inputs': columns}, a list of rows, "
        "or pandas split {'columns': [...], 'data': [[...]]}"
    )


def _zip_row(columns: list[Any], row: object, number: int) -> dict[str, Any]:
    from ferry.errors import InvalidRequest

    if not isinstance(row, list) or len(row) != len(columns):
        raise InvalidRequest(
            f"data row {number} must be a list of {len(columns)} values", row=number
        )
    return {str(c): v for c, v in zip(columns, row, strict=True)}


def batch_columns(batch: Batch, signature: Signature) -> dict[str, list[Any]]:
    """A validated batch back to JSON columns, each value in its column's declared type."""
    return {
        spec.name: [_json_cell(v, spec.dtype) for v in batch.columns[spec.name].tolist()]
        for spec in signature.inputs
    }


def _json_cell(value: Any, dtype: str) -> Any:
    if isinstance(value, list):
        return [_json_cell(v, dtype) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if dtype == "bool":  # a nullable bool column travels as 1.0/0.0/NaN
            return bool(value)
        if dtype.startswith("int"):  # a nullable int column travels as float
            return int(value)
    return value


def show_predictions(answer: Mapping[str, Any], signature: Signature, batch: Batch) -> None:
    from ferry.cli.output import show_grid

    inputs = batch_columns(batch, signature)
    columns = list(inputs)
    cells: list[list[Any]] = [list(values) for values in zip(*inputs.values(), strict=True)]
    for key, values in answer.items():
        if key in _META_KEYS:
            continue
        spec = signature.output(key)
        labels = spec.labels if spec is not None and spec.kind == "probabilities" else None
        if labels and all(isinstance(v, list) and len(v) == len(labels) for v in values):
            columns += [f"P({label})" for label in labels]
            for row, value in zip(cells, values, strict=True):
                row.extend(round(p, 4) if isinstance(p, float) else p for p in value)
        else:
            columns.append("prediction" if key == "predictions" else key)
            for row, value in zip(cells, values, strict=True):
                row.append(value)
    title = f"{answer.get('model', '')} v{answer.get('version', '')}: {batch.n_rows} rows"
    show_grid(title, columns, cells, highlight_from=len(inputs))


def check(
    url: Annotated[str, typer.Argument(help="Base URL of the running server.")],
    bundle: Annotated[
        Path,
        typer.Option(exists=True, file_okay=False, help="Bundle whose example to replay."),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Model name (default: the bundle's).")
    ] = None,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="Relative and absolute tolerance for floats.")
    ] = 1e-6,
    saved_cases: Annotated[
        bool,
        typer.Option(
            "--cases/--no-cases",
            help="Also replay the model's regression cases (ferry replay --save-test) kept in "
            "the registry (FERRY_HOME / FERRY_DATABASE_URL + FERRY_ARTIFACTS).",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 30.0,
) -> None:
    """Replay the bundle's input example, and the model's saved regression cases, against URL
    and compare with their expected outputs; exit 1 on any mismatch."""
    import orjson

    from ferry.cli.output import show_json
    from ferry.client import Client
    from ferry.errors import BundleError
    from ferry.model.bundle import verify_files
    from ferry.model.example import read_split
    from ferry.model.manifest import read_manifest

    manifest = read_manifest(bundle)
    verify_files(bundle, manifest.files)
    if not manifest.example or not manifest.expected_output:
        raise BundleError(
            f"{bundle} has no input example and expected output to replay; "
            "save it with: ferry save MODEL DEST --example FILE",
            path=str(bundle),
        )
    split = read_split(bundle / manifest.example)
    expected: dict[str, Any] = orjson.loads((bundle / manifest.expected_output).read_bytes())
    rows = [dict(zip(split["columns"], row, strict=True)) for row in split["data"]]
    model_name = name or manifest.name
    cases = _saved_cases(model_name) if saved_cases else []
    with Client(url, timeout=timeout) as client:
        results = [_replay(client, model_name, "example", rows, expected, tolerance)]
        results += [
            _replay(client, model_name, f"case {case.request_id}", case.inputs, case.expected,
                    tolerance, case.request_id)
            for case in cases
        ]  # fmt: skip
    passed = all(result.passed for result in results)
    if as_json:
        show_json(
            {
                "model": model_name,
                "url": url.rstrip("/"),
                "tolerance": tolerance,
                "passed": passed,
                "example": results[0].to_json(),
                "cases": [result.to_json() for result in results[1:]],
            }
        )
    else:
        _show_replays(f"{model_name} at {url.rstrip('/')}", results, tolerance)
    if not passed:
        raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class _Replayed:
    """One input set (the bundle's example or a saved case) sent to the server under check."""

    label: str
    request_id: str | None  # the saved case's, None for the example
    rows: int
    outputs: list[str]
    version: str | None  # the version that answered
    mismatches: list[Mismatch]
    refused: str = ""  # the server's error, when it refused the inputs

    @property
    def passed(self) -> bool:
        return not self.mismatches and not self.refused

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "passed": self.passed,
            "version": self.version,
            "rows": self.rows,
            "outputs": self.outputs,
            "refused": self.refused or None,
            "mismatches": [
                {"output": m.output, "row": m.row, "expected": m.expected, "got": m.got}
                for m in self.mismatches[:_MAX_MISMATCHES]
            ],
        }
        if self.request_id is not None:
            data = {"request_id": self.request_id, **data}
        return data


def _replay(
    client: Client,
    model: str,
    label: str,
    inputs: list[dict[str, Any]] | dict[str, list[Any]],
    expected: dict[str, Any],
    tolerance: float,
    request_id: str | None = None,
) -> _Replayed:
    from ferry.client import ConnectionFailed
    from ferry.errors import FerryError
    from ferry.model.example import compare_outputs

    n_rows = len(inputs) if isinstance(inputs, list) else len(next(iter(inputs.values()), []))
    outputs = list(expected)
    try:
        answer: dict[str, Any] = dict(client.predict(model, inputs, outputs=outputs))
    except ConnectionFailed:
        raise
    except FerryError as exc:
        refused = f"the server refused the {label} ({exc.code}): {exc.message}"
        return _Replayed(label, request_id, n_rows, outputs, None, [], refused)
    version = answer.get("version")
    mismatches = compare_outputs(expected, answer, tolerance)
    return _Replayed(
        label, request_id, n_rows, outputs, None if version is None else str(version), mismatches
    )


def _show_replays(where: str, results: list[_Replayed], tolerance: float) -> None:
    from ferry.cli.output import show_check

    for result in results:
        if result.refused:
            show_check(False, f"{where}: {result.refused}", [])
            continue
        head = f"{where} (version {result.version}): {result.label}, {result.rows} rows"
        outputs = ", ".join(result.outputs)
        if result.passed:
            show_check(True, f"{head}, {outputs} match (tolerance {tolerance:g})", [])
            continue
        shown = [
            [m.output, m.row if m.row >= 0 else "all", m.expected, m.got]
            for m in result.mismatches[:_MAX_MISMATCHES]
        ]
        show_check(
            False,
            f"{head}: {len(result.mismatches)} mismatches ({outputs}, tolerance {tolerance:g})",
            shown,
        )
    if len(results) > 1:
        failed = sum(1 for result in results[1:] if not result.passed)
        show_check(not failed, f"{len(results) - 1 - failed} of {len(results) - 1} saved "
                   "cases pass", [])  # fmt: skip


def _saved_cases(model: str) -> list[Case]:
    """The regression cases kept for ``model`` in the configured registry (none when that
    registry does not exist or does not know the model)."""
    from sqlalchemy.engine import make_url

    from ferry.config.paths import database_url
    from ferry.config.settings import get_settings
    from ferry.errors import ModelNotFound
    from ferry.monitoring.cases import cases
    from ferry.registry import Registry

    settings = get_settings()
    url = make_url(database_url(settings))
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return []  # no registry here: nothing was saved (and nothing is created)
    # the schema brought up as any registry command would: a database file made by another
    # command (or an older Ferry) may not have it yet
    with Registry.from_settings(settings) as registry:
        try:
            return cases(registry, model)
        except ModelNotFound:
            return []


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
    app.command("check")(check)
