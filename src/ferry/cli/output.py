"""Everything the CLI prints (the only module that imports rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ferry.errors import FerryError

console = Console()
err_console = Console(stderr=True)


def show_error(exc: FerryError) -> None:
    err_console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
    for key, value in exc.details.items():
        err_console.print(f"  {key}: {value}")


def show_serving(name: str, base_url: str, curl: str) -> None:
    console.print(f"[bold green]Serving[/] {name} on {base_url}")
    console.print(f"  docs: {base_url}/docs   metrics: {base_url}/metrics")
    console.print("  try:")
    console.print(f"    {curl}", soft_wrap=True, highlight=False, markup=False)


def show_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


def show_lines(lines: list[str]) -> None:
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


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


def show_facts(title: str, facts: list[tuple[str, str]]) -> None:
    """Label: value lines in a borderless two-column table."""
    table = Table(title=title, show_header=False, box=None, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in facts:
        table.add_row(label, Text(value))
    console.print(table)


def show_grid(
    title: str, columns: list[str], rows: list[list[object]], highlight_from: int | None = None
) -> None:
    """A table of values formatted by ``format_value``; columns from ``highlight_from`` in bold."""
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        bold = highlight_from is not None and index >= highlight_from
        table.add_column(column, style="bold cyan" if bold else None, overflow="fold")
    for row in rows:
        table.add_row(*[Text(format_value(v)) for v in row])
    console.print(table)


def show_check(passed: bool, summary: str, mismatches: list[list[object]]) -> None:
    """PASS or FAIL with a one-line summary and, on FAIL, the first mismatching rows."""
    verdict = "[bold green]PASS[/]" if passed else "[bold red]FAIL[/]"
    console.print(f"{verdict} {escape(summary)}", highlight=False, soft_wrap=True)
    if mismatches:
        show_grid("first mismatches", ["output", "row", "expected", "got"], mismatches)
