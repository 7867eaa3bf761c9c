"""Monitoring commands: ``ferry drift``, ``ferry monitoring export``, ``ferry telemetry ...``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from ferry.monitoring.runs import DriftRun, DriftSummary
    from ferry.monitoring.storage import TelemetryImport

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Ferry server (default: $FERRY_URL, else http://127.0.0.1:8000).",
        show_default=False,
    ),
]
DRIFT_EXIT_CODE = 3  # --fail-on-drift: drift is not an error, but scripts want to know

monitoring_app = typer.Typer(help="Alerting rules and dashboards.", no_args_is_help=True)
telemetry_app = typer.Typer(
    help="Signed monitoring summaries from a firewalled site.", no_args_is_help=True
)


def drift(
    ref: Annotated[str, typer.Argument(help="iris@production, iris/3 or iris.")],
    data: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Live inputs (.csv, .parquet, .jsonl) to compare."
        ),
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(help="Compare the last WINDOW of logged predictions instead: 1h, 30m, 7d."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Also write the HTML report here.")
    ] = None,
    history: Annotated[
        bool, typer.Option("--history", help="List the stored reports instead of running one.")
    ] = False,
    store: Annotated[bool, typer.Option(help="Keep the report in the server's history.")] = True,
    fail_on_drift: Annotated[
        bool, typer.Option(help=f"Exit with code {DRIFT_EXIT_CODE} when a feature drifted.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    url: UrlOption = None,
) -> None:
    """Compare live inputs with the version's reference profile, feature by feature."""
    from ferry.cli.output import show_listing
    from ferry.client import Client

    with Client(url) as client:
        version = client.resolve(ref)
        if history:
            found = client.drift_history(version.model, version=version.version)
            show_listing(as_json, found, lambda: _show_history(ref, found.items))
            return
        if (data is None) == (window is None):
            raise typer.BadParameter("give --data FILE or --window DURATION (one of them)")
        if data is not None:
            from ferry.monitoring.profile import read_table

            run = client.drift(
                version.model, version.version, read_table(data, field="--data"), store=store
            )
        else:
            from ferry.durations import parse_duration

            assert window is not None
            seconds = parse_duration(window, field="--window").total_seconds()
            run = client.drift(version.model, version.version, window_seconds=seconds, store=store)
        if html is not None:
            from ferry.monitoring.report import render_html

            html.write_text(render_html(run.report), encoding="utf-8")
    show_listing(as_json, run, lambda: _show_run(run, html))
    if fail_on_drift and run.report.drifted:
        raise typer.Exit(DRIFT_EXIT_CODE)


def _show_run(run: DriftRun, html: Path | None) -> None:
    from ferry.cli.output import show_facts, show_grid

    report = run.report
    verdict = (
        f"DRIFT in {', '.join(report.drifted_features)}"
        if report.drifted
        else f"no drift in {len(report.features)} features"
    )
    facts = [
        ("verdict", verdict),
        ("live rows", str(report.live_rows)),
        ("reference rows", str(report.reference_rows)),
    ]
    if run.id is not None:
        facts.append(("report id", str(run.id)))
    if report.note:
        facts.append(("note", report.note))
    if run.alert is not None:
        facts.append(("alert", f"{run.alert}: posting to the webhook"))
    if html is not None:
        facts.append(("html report", str(html)))
    show_facts(f"Drift of {report.model} version {report.version}", facts)
    names = ["psi", "ks", "chi2", "js", "missing", "unseen"]
    rows: list[list[object]] = []
    for feature in report.features:
        cells: list[object] = [feature.name, feature.kind, feature.live_rows]
        for name in names:
            test = feature.tests.get(name)
            if test is None:
                cells.append("")
                continue
            value = f"{test.statistic:.3g}"
            if test.pvalue is not None:
                value += f" (p={test.pvalue:.2g})"
            cells.append(value + (" *" if test.drifted else ""))
        cells.append("yes" if feature.drifted else "no")
        rows.append(cells)
    show_grid("Features (* past its threshold)", ["feature", "kind", "rows", *names, "drift"], rows)


def _show_history(ref: str, items: list[DriftSummary]) -> None:
    from ferry.cli.output import show_grid

    rows: list[list[object]] = []
    for item in items:
        rows.append(
            [
                item.id,
                item.version,
                item.created_at.isoformat(timespec="seconds"),
                item.live_rows,
                ", ".join(item.drifted_features) or "-",
            ]
        )
    show_grid(f"Drift reports of {ref}", ["id", "version", "at", "live rows", "drifted"], rows)


@monitoring_app.command("export")
def monitoring_export(
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Folder to write.")],
    error_ratio: Annotated[
        float, typer.Option(help="Alert when this share of requests answer 5xx.")
    ] = 0.05,
    latency_p99: Annotated[
        float, typer.Option(help="Alert when the p99 latency passes this many seconds.")
    ] = 0.5,
    job: Annotated[str, typer.Option(help="Prometheus scrape job of the Ferry servers.")] = "ferry",
) -> None:
    """Write Prometheus alerting rules and a Grafana dashboard over Ferry's metrics."""
    from ferry.cli.output import show_lines
    from ferry.config.settings import get_settings
    from ferry.monitoring.alerts import AlertLimits, export_monitoring
    from ferry.monitoring.drift import thresholds_from_settings

    psi = thresholds_from_settings(get_settings()).psi
    limits = AlertLimits(
        error_ratio=error_ratio, latency_p99_seconds=latency_p99, drift_psi=psi, job=job
    )
    written = export_monitoring(out, limits)
    show_lines([f"wrote {path}" for path in written])


KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        exists=True, dir_okay=False, help="The shared signing key (default: $FERRY_TELEMETRY_KEY)."
    ),
]


@telemetry_app.command("export")
def telemetry_export(
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="Bundle to write.")],
    since: Annotated[
        str, typer.Option(help="The window: drift runs this recent (7d, 24h).")
    ] = "7d",
    key_file: KeyFileOption = None,
    site: Annotated[
        str | None, typer.Option(help="This site's name (default: $FERRY_TELEMETRY_SITE or host).")
    ] = None,
    metrics_url: Annotated[
        str | None,
        typer.Option(
            help="A Ferry server whose /metrics to summarize (requests, errors, latency)."
        ),
    ] = None,
    include_samples: Annotated[
        bool,
        typer.Option(help="Also ship logged requests with their inputs (off: aggregates only)."),
    ] = False,
    max_samples: Annotated[
        int, typer.Option(min=1, help="With --include-samples: the newest this many requests.")
    ] = 1000,
) -> None:
    """Write a signed bundle of this site's monitoring summary (no raw inputs by default)."""
    from ferry.cli.output import show_facts

    manifest = _export(
        out, since, key_file, site, metrics_url, max_samples if include_samples else 0
    )
    files = manifest["files"]
    show_facts(
        f"Telemetry bundle {out}",
        [
            ("site", manifest["site"]),
            ("window", f"{manifest['since']} to {manifest['until']}"),
            ("files", ", ".join(f"{name} ({files[name]['size']} B)" for name in files)),
            ("signed", "HMAC-SHA256 over manifest.json, the archive sealed"),
        ],
    )


def _export(
    out: Path,
    since: str,
    key_file: Path | None,
    site: str | None,
    metrics_url: str | None,
    max_samples: int,
) -> dict[str, Any]:
    from datetime import UTC, datetime

    from ferry.config.settings import get_settings
    from ferry.durations import parse_duration
    from ferry.monitoring.export import export_site
    from ferry.monitoring.storage import MonitoringStore
    from ferry.monitoring.telemetry import default_site, load_key
    from ferry.registry import Registry

    window = parse_duration(since, field="--since")
    key = load_key(key_file)
    settings = get_settings()
    until = datetime.now(UTC)
    metrics_text = _scrape(metrics_url) if metrics_url else None
    with (
        Registry.from_settings(settings) as registry,
        MonitoringStore.from_settings(settings) as store,
    ):
        return export_site(
            registry,
            store,
            out,
            key=key,
            site=default_site(site or settings.telemetry_site),
            since=until - window,
            until=until,
            metrics_text=metrics_text,
            max_samples=max_samples,
        )


@telemetry_app.command("push")
def telemetry_push(
    to: Annotated[
        str, typer.Option("--to", help="Our Ferry server, e.g. https://ferry.example.com.")
    ],
    since: Annotated[str, typer.Option(help="The window of the new bundle (7d, 24h).")] = "1d",
    spool: Annotated[
        Path | None,
        typer.Option(
            file_okay=False, help="Where bundles wait (default: FERRY_HOME/telemetry-spool)."
        ),
    ] = None,
    key_file: KeyFileOption = None,
    site: Annotated[str | None, typer.Option(help="This site's name.")] = None,
    metrics_url: Annotated[
        str | None, typer.Option(help="A Ferry server whose /metrics to summarize.")
    ] = None,
    export: Annotated[
        bool, typer.Option(help="Spool a new bundle first (--no-export: only send the spool).")
    ] = True,
) -> None:
    """Export a bundle into the spool and send every spooled bundle to --to; what cannot be
    sent now (offline, server busy) waits for the next push."""
    import os
    from datetime import UTC, datetime

    from ferry.cli.output import show_lines
    from ferry.config.settings import get_settings
    from ferry.monitoring.forward import default_spool, forward

    folder = spool or default_spool(get_settings())
    folder.mkdir(parents=True, exist_ok=True)
    if export:
        name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + ".tgz"
        _export(folder / name, since, key_file, site, metrics_url, 0)
    result = forward(folder, to, api_key=os.environ.get("FERRY_API_KEY"))
    lines = [f"sent {len(result.delivered)} bundle(s) to {to}"]
    if result.rejected:
        lines.append(f"refused by the server, moved to {folder / 'rejected'}: {result.rejected}")
    if result.waiting:
        lines.append(
            f"kept {len(result.waiting)} bundle(s) in {folder} for the next push ({result.error})"
        )
    show_lines(lines)


def _scrape(url: str) -> str:
    import httpx

    from ferry.errors import ConnectionFailed

    target = url.rstrip("/") + "/metrics"
    try:
        response = httpx.get(target, timeout=10.0)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConnectionFailed(f"cannot read {target}: {exc}", url=target) from exc
    return response.text


@telemetry_app.command("import")
def telemetry_import(
    bundle: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A bundle .tgz.")],
    key_file: KeyFileOption = None,
) -> None:
    """Verify a site's bundle (signature and file hashes) and keep its summary."""
    from ferry.cli.output import show_lines
    from ferry.config.settings import get_settings
    from ferry.monitoring.export import import_site
    from ferry.monitoring.storage import MonitoringStore
    from ferry.monitoring.telemetry import load_key, read_bundle

    verified = read_bundle(bundle, load_key(key_file))
    with MonitoringStore.from_settings(get_settings()) as store:
        store.migrate()
        record, created = import_site(verified, store)
    state = "imported" if created else "already imported"
    show_lines([f"{state}: site {record.site}, window {record.since} to {record.until}"])


@telemetry_app.command("sites")
def telemetry_sites(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Sites whose bundles were imported, with their latest summary."""
    from ferry.cli.output import show_listing
    from ferry.config.settings import get_settings
    from ferry.monitoring.storage import MonitoringStore

    with MonitoringStore.from_settings(get_settings()) as store:
        store.migrate()
        latest = store.latest_telemetry()
    sites = [item for item, _ in latest]
    listed = [
        {
            "site": s.site,
            "created_at": s.created_at.isoformat(),
            "since": s.since.isoformat(),
            "until": s.until.isoformat(),
            "bundles": bundles,
            "summary": s.summary,
        }
        for s, bundles in latest
    ]
    show_listing(as_json, listed, lambda: _show_sites(sites))


def _show_sites(sites: list[TelemetryImport]) -> None:
    from ferry.cli.output import show_grid

    rows: list[list[object]] = []
    for s in sites:
        summary = s.summary["summary"]
        rows.append(
            [
                s.site,
                s.created_at.isoformat(timespec="seconds"),
                summary.get("versions", 0),
                summary.get("requests", "-"),
                summary.get("server_errors", "-"),
                ", ".join(summary.get("drifted_versions", [])) or "-",
            ]
        )
    show_grid(
        "Telemetry sites",
        ["site", "last bundle", "versions", "requests", "5xx", "drifted"],
        rows,
    )


def register(app: typer.Typer) -> None:
    app.command("drift")(drift)
    app.add_typer(monitoring_app, name="monitoring")
    app.add_typer(telemetry_app, name="telemetry")
