"""One way to print data: `--output table|json|yaml` behave the same in every command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def emit(data: Any, output: Output, table: Callable[[], None]) -> None:
    """Machine formats print `data` exactly; the table format calls `table` to draw for people."""
    if output == Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    elif output == Output.YAML:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    else:
        table()


def draw(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if v is None else str(v) for v in row))
    console.print(grid)
