"""Everything the CLI prints (the only module that imports rich).

rich is imported on first use: ``ferry serve`` prints its banner as plain lines and never
loads it, which keeps 3 MB and 30 ms off every serving process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferry.errors import FerryError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ferry.client import (
        Alias,
        LineageGraph,
        LineageNode,
        ModelVersion,
        Page,
        RegisteredModel,
    )


@cache
def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


def escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _table(**options: Any) -> Table:
    from rich.table import Table

    return Table(**options)


def _text(value: str) -> Text:
    from rich.text import Text

    return Text(value)


def show_error(exc: FerryError) -> None:
    console(stderr=True).print(f"[bold red]error[/] ({exc.code}): {exc.message}")
    for key, value in exc.details.items():
        console(stderr=True).print(f"  {key}: {value}")


def show_serving(name: str, base_url: str, curl: str) -> None:
    lines = [
        f"Serving {name} on {base_url}",
        f"  docs: {base_url}/docs   metrics: {base_url}/metrics",
        "  try:",
        f"    {curl}",
    ]
    show_banner(lines)


def show_banner(lines: list[str]) -> None:
    """A server's startup lines: printed, or with FERRY_LOG_FORMAT=json logged (as JSON, so
    every line the server writes is)."""
    from ferry.config.logging import log_format

    if log_format() != "json":
        print("\n".join(lines), flush=True)
        return
    import logging

    for line in lines:
        logging.getLogger("ferry.cli").info(line.strip())


def show_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = _table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console().print(table)


def show_lines(lines: list[str]) -> None:
    for line in lines:
        console().print(line, highlight=False, markup=False, soft_wrap=True)


def format_value(value: object) -> str:
    """A cell as text: floats to 6 significant digits, vectors as [a, b], missing as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".en") else f"{text}.0"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def show_json(data: object) -> None:
    """Machine-readable output: indented JSON on stdout, nothing else."""
    import sys

    import orjson

    options = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    sys.stdout.write(orjson.dumps(data, option=options).decode() + "\n")


def show_listing(as_json: bool, data: object, table: Callable[[], object]) -> None:
    """What a command with ``--json`` prints: ``data`` as JSON (a pydantic model dumped in
    JSON mode), else the human view that ``table()`` prints."""
    if not as_json:
        table()
        return
    from pydantic import BaseModel

    show_json(data.model_dump(mode="json") if isinstance(data, BaseModel) else data)


def show_facts(title: str, facts: list[tuple[str, str]]) -> None:
    """Label: value lines in a borderless two-column table."""
    table = _table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in facts:
        table.add_row(label, _text(value))
    console().print(table)


def show_grid(
    title: str, columns: list[str], rows: list[list[object]], highlight_from: int | None = None
) -> None:
    """A table of values formatted by ``format_value``; columns from ``highlight_from`` in bold."""
    table = _table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        bold = highlight_from is not None and index >= highlight_from
        table.add_column(column, style="bold cyan" if bold else None, overflow="fold")
    for row in rows:
        table.add_row(*[_text(format_value(v)) for v in row])
    console().print(table)


def show_check(passed: bool, summary: str, mismatches: list[list[object]]) -> None:
    """PASS or FAIL with a one-line summary and, on FAIL, the first mismatching rows."""
    verdict = "[bold green]PASS[/]" if passed else "[bold red]FAIL[/]"
    console().print(f"{verdict} {escape(summary)}", highlight=False, soft_wrap=True)
    if mismatches:
        show_grid("first mismatches", ["output", "row", "expected", "got"], mismatches)


# --- registry ---------------------------------------------------------------------------------
def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns


def _when(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def _pairs(values: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(values.items()))


def show_registered(version: ModelVersion, alias: str | None) -> None:
    """One line on what ``ferry register`` did, then the version's facts."""
    if version.created is False:
        console().print(
            f"[bold yellow]Already registered[/] as {escape(version.model)} version "
            f"{version.version} (same content)",
            highlight=False,
        )
    else:
        console().print(
            f"[bold green]Registered[/] {escape(version.model)} version {version.version}",
            highlight=False,
        )
    if alias is not None:
        console().print(
            f"  alias {escape(alias)} -> version {version.version}", highlight=False, markup=False
        )
    show_version(version)


def show_version(version: ModelVersion) -> None:
    facts = [
        ("version", f"{version.model}/{version.version}"),
        ("flavor", version.flavor),
        ("size", format_size(version.size)),
        ("sha256", version.sha256),
        ("created", f"{_when(version.created_at)} by {version.created_by}"),
        ("inputs", ", ".join(f"{c.name}:{c.dtype}" for c in version.signature.inputs)),
        ("outputs", ", ".join(o.name for o in version.signature.outputs)),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("metrics", _pairs(version.metrics) or "-"),
        ("params", _pairs(version.params) or "-"),
        ("tags", _pairs(version.tags) or "-"),
        ("parent", f"{version.parent.model}/{version.parent.version}" if version.parent else "-"),
    ]
    lineage = version.lineage
    if lineage.data_fingerprint:
        facts.append(
            ("data", f"sha256 {lineage.data_fingerprint[:16]}… ({lineage.data_rows} rows)")
        )
    if lineage.code_ref:
        facts.append(("code", lineage.code_ref))
    if lineage.run_id:
        facts.append(("run", lineage.run_id))
    if version.description:
        facts.append(("description", version.description))
    show_facts(f"Model {version.model} version {version.version}", facts)


def show_models(page: Page[RegisteredModel]) -> None:
    rows: list[list[object]] = [
        [
            m.name,
            m.latest_version,
            _pairs(m.aliases),
            _pairs(m.tags),
            _when(m.updated_at),
            m.description,
        ]
        for m in page.items
    ]
    columns = ["name", "latest", "aliases", "tags", "updated", "description"]
    _record_table(_page_title("Models", page), columns, rows, keep=2)


def show_versions(name: str, page: Page[ModelVersion]) -> None:
    rows: list[list[object]] = [
        [
            v.version,
            _when(v.created_at),
            v.flavor,
            format_size(v.size),
            ", ".join(v.aliases),
            _pairs(v.metrics),
            _pairs(v.tags),
            f"{v.parent.model}/{v.parent.version}" if v.parent else "",
        ]
        for v in page.items
    ]
    columns = ["version", "created", "flavor", "size", "aliases", "metrics", "tags", "parent"]
    _record_table(_page_title(f"Versions of {name}", page), columns, rows, keep=4)


def show_aliases(name: str, aliases: list[Alias]) -> None:
    rows: list[list[object]] = [
        [a.alias, a.version, _when(a.updated_at), a.updated_by] for a in aliases
    ]
    _record_table(f"Aliases of {name}", ["alias", "version", "updated", "by"], rows, keep=3)


def show_alias(alias: Alias) -> None:
    console().print(
        f"{alias.model}@{alias.alias} -> version {alias.version}", highlight=False, markup=False
    )


def show_lineage(graph: LineageGraph) -> None:
    def row(relation: str, node: LineageNode) -> list[object]:
        data = node.lineage.data_fingerprint
        return [
            relation,
            f"{node.model}/{node.version}",
            node.depth,
            f"{data[:12]}… ({node.lineage.data_rows} rows)" if data else "",
            node.lineage.code_ref or "",
            node.lineage.run_id or "",
            _when(node.created_at),
        ]

    rows = [row("ancestor", n) for n in reversed(graph.ancestors)]
    rows.append(row("this", graph.root))
    rows.extend(row("descendant", n) for n in graph.descendants)
    columns = ["relation", "version", "depth", "data", "code", "run", "created"]
    _record_table(f"Lineage of {graph.root.model}/{graph.root.version}", columns, rows, keep=3)


def show_pulled(path: Path, version: ModelVersion) -> None:
    console().print(
        f"[bold green]Pulled[/] {escape(version.model)} version {version.version} "
        f"({format_size(version.size)}) into {escape(str(path))}",
        highlight=False,
    )
    console().print(f"  serve it: ferry serve {path}", highlight=False, markup=False)


def _record_table(title: str, columns: list[str], rows: list[list[object]], keep: int) -> None:
    """A table whose first ``keep`` columns (short identifiers) never wrap; the rest fold."""
    table = _table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, no_wrap=index < keep, overflow="fold")
    for row in rows:
        table.add_row(*[_text(format_value(v)) for v in row])
    console().print(table)


def _page_title(title: str, page: Page[Any]) -> str:
    if page.total <= len(page.items) and page.offset == 0:
        return f"{title} ({page.total})"
    end = page.offset + len(page.items)
    return f"{title} ({page.offset + 1}-{end} of {page.total})"


@contextmanager
def transfer_progress(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr for an upload or a download; yields the callback to feed it."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(
        "[progress.description]{task.description}",
        *columns,
        console=console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update
