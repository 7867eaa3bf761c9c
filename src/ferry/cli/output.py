"""Everything the CLI prints (the only module that imports rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

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
        console.print(line, highlight=False, markup=False)
