"""``ferry logs MODEL`` (the prediction log) and ``ferry replay REQUEST_ID`` (re-run a logged
request against any version, and keep it as a regression case with ``--save-test``).

Both read the log from a server when ``--url`` (or ``FERRY_URL``) is given, else straight from
the local store (``FERRY_DATABASE_URL``, else FERRY_HOME's SQLite file). Replay loads the
version from the registry (FERRY_HOME / FERRY_DATABASE_URL + FERRY_ARTIFACTS) or ``--model``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ferry.monitoring.predlog import LoggedPrediction, PredictionStore

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Read the log from this Ferry server (default: $FERRY_URL; else the local store).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _server(url: str | None) -> str | None:
    return url or os.environ.get("FERRY_URL") or None


def logs(
    model: Annotated[str, typer.Argument(help="Model name.")],
    since: Annotated[str, typer.Option(help="How far back (30m, 1h, 7d) or an ISO time.")] = "1h",
    until: Annotated[str | None, typer.Option(help="Up to (duration back or ISO time).")] = None,
    version: Annotated[str | None, typer.Option(help="Only this version.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Show the logged predictions of MODEL, newest first."""
    from ferry.cli.output import show_listing

    server = _server(url)
    if server is not None:
        from ferry.client import Client
        from ferry.client.monitoring import predictions

        with Client(server) as client:
            items = predictions(
                client, model, since=since, until=until, version=version, limit=limit
            )
    else:
        from ferry.monitoring.predlog import parse_time, read_records

        with _local_store() as store:
            records = read_records(
                store,
                model,
                version,
                parse_time(since, "since"),
                parse_time(until, "until") if until else None,
                limit=limit,
            )
        items = [record.to_json() for record in records]
    title = f"{model}: {len(items)} logged requests since {since}"
    show_listing(as_json, items, lambda: _show_logs(title, items))


def _show_logs(title: str, items: list[dict[str, Any]]) -> None:
    from ferry.cli.output import show_grid

    rows: list[list[object]] = [
        [
            item["at"][:23].replace("T", " "),
            item["request_id"],
            item["version"],
            item["protocol"],
            item["status"]
            if item["error_code"] is None
            else f"{item['status']} {item['error_code']}",
            item["rows"],
            round(float(item["latency"]) * 1000, 2),
            _brief((item.get("outputs") or {}).get("predictions")),
        ]
        for item in items
    ]
    show_grid(
        title, ["at (UTC)", "request id", "version", "protocol", "status", "rows", "ms",
                "predictions"], rows
    )  # fmt: skip


def _brief(values: Any, keep: int = 5) -> Any:
    if not isinstance(values, list) or len(values) <= keep:
        return values
    return [*values[:keep], f"... {len(values) - keep} more"]


@contextmanager
def _local_store() -> Iterator[PredictionStore]:
    from ferry.monitoring.predlog import open_store

    # the schema first: on a home that never logged a request, "nothing logged" and not a
    # missing table (Registry.open migrates the same database the same way)
    store = open_store(migrate=True)
    try:
        yield store
    finally:
        store.close()


def _record(request_id: str, server: str | None) -> LoggedPrediction:
    from datetime import datetime

    from ferry.monitoring.predlog import LoggedPrediction, get

    if server is None:
        with _local_store() as store:
            found: LoggedPrediction = get(store, request_id)
            return found
    from ferry.client import Client
    from ferry.client.monitoring import prediction

    with Client(server) as client:
        data = prediction(client, request_id)
    data["at"] = datetime.fromisoformat(data["at"])
    return LoggedPrediction(**data)


def replay(
    request_id: Annotated[str, typer.Argument(help="The request id a prediction answered with.")],
    version: Annotated[
        int | None,
        typer.Option(help="Registry version to run it against [default: the logged one]."),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option("--model", help="Run it against this bundle or model file instead."),
    ] = None,
    save_test: Annotated[
        bool,
        typer.Option(
            "--save-test",
            help="Keep it as a regression case of the model (inputs + this version's outputs).",
        ),
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Re-run a logged request against a version and show the logged vs the new outputs."""
    from ferry.cli.output import show_check, show_grid, show_json, show_lines
    from ferry.errors import InvalidRequest
    from ferry.monitoring.cases import replay as run_replay
    from ferry.monitoring.cases import save_case

    record = _record(request_id, _server(url))
    if model_path is not None and save_test:
        raise InvalidRequest("--save-test keeps the case in the registry; drop --model")
    registry = None
    try:
        if model_path is not None:
            from ferry.model.loaded import load

            loaded = load(model_path)
        else:
            registry, loaded = _registry_version(record, version)
        result = run_replay(record, loaded)
        case = save_case(registry, result) if save_test and registry is not None else None
    finally:
        if registry is not None:
            registry.close()
    if as_json:
        show_json({**result.to_json(), "saved": case is not None})
        return
    logged = record.outputs or {}
    rows = [
        [name, row, value, result.outputs[name][row]]
        for name, values in logged.items()
        if name in result.outputs
        for row, value in enumerate(values)
    ]
    show_grid(
        f"{record.model} request {record.request_id}: logged v{record.version} vs "
        f"v{result.version}",
        ["output", "row", f"logged (v{record.version})", f"replayed (v{result.version})"],
        rows,
    )
    summary = f"{len(result.mismatches)} of {record.rows} rows differ" if rows else "no outputs"
    show_check(result.same, summary, [])
    if case is not None:
        show_lines([f"saved as a regression case of {case.model} (expects v{case.version})"])


def _registry_version(record: LoggedPrediction, version: int | None) -> tuple[Any, Any]:
    from ferry.config.paths import cache_dir
    from ferry.config.settings import get_settings
    from ferry.errors import InvalidRequest
    from ferry.model.loaded import load_bundle
    from ferry.registry import Registry

    if version is None:
        if not record.version.isdigit():
            raise InvalidRequest(
                f"the request was answered by version {record.version!r}, which is not a "
                "registry version; give --version N or --model PATH",
                field="version",
            )
        version = int(record.version)
    settings = get_settings()
    registry = Registry.from_settings(settings, migrate=False)
    try:
        folder = registry.checkout(
            record.model, version, cache_dir(settings.home.expanduser()) / "models"
        )
        return registry, load_bundle(folder)
    except BaseException:
        registry.close()
        raise


def check_cases(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Option(help="Version to check [default: the latest].")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the regression cases saved for MODEL (ferry replay --save-test) against a
    version; exit 1 if any answer differs."""
    from ferry.cli.output import show_check, show_json
    from ferry.config.paths import cache_dir
    from ferry.config.settings import get_settings
    from ferry.errors import InvalidRequest
    from ferry.model.loaded import load_bundle
    from ferry.monitoring.cases import cases, check_case
    from ferry.registry import Registry

    settings = get_settings()
    with Registry.from_settings(settings, migrate=False) as registry:
        number = version or registry.get_model(model).latest_version
        if number is None:
            raise InvalidRequest(f"model {model!r} has no versions yet", field="model")
        saved = cases(registry, model)
        folder = registry.checkout(model, number, cache_dir(settings.home.expanduser()) / "models")
    loaded = load_bundle(folder)
    results = [(case, check_case(loaded, case)) for case in saved]
    failed = sum(1 for _, mismatches in results if mismatches)
    if as_json:
        show_json(
            {
                "model": model,
                "version": number,
                "cases": [
                    {"request_id": case.request_id, "passed": not mismatches}
                    for case, mismatches in results
                ],
                "failed": failed,
            }
        )
    else:
        for case, mismatches in results:
            rows = [[m.output, m.row, m.expected, m.got] for m in mismatches[:5]]
            show_check(not mismatches, f"case {case.request_id} (expects v{case.version})", rows)
        show_check(
            not failed, f"{len(results) - failed} of {len(results)} cases pass on v{number}", []
        )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
    app.command("replay")(replay)
    app.command("cases")(check_cases)
