"""Aggregate run records into a ranked leaderboard and render it as Markdown, CSV or HTML."""

from __future__ import annotations

import csv
import html
import io
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError
from .results import RunRecord

FORMATS = ("markdown", "csv", "html")

EMPTY_MESSAGE = "No runs yet. Train one with `zoo run mlp`."

# Column titles of the Markdown and HTML tables, and whether each column is numeric
# and therefore right-aligned.
_COLUMNS = (
    ("Rank", True),
    ("Model", False),
    ("Settings", False),
    ("Runs", True),
    ("Test accuracy", True),
    ("Spread", True),
    ("Macro F1", True),
    ("Test loss", True),
    ("Parameters", True),
    ("Train s", True),
    ("Images/s", True),
)

# CSV header: the same columns with raw numbers, and the spread split into three
# columns, so that a spreadsheet can sort by any of them.
CSV_HEADER = (
    "rank",
    "model",
    "settings",
    "runs",
    "test_accuracy",
    "accuracy_std",
    "accuracy_min",
    "accuracy_max",
    "macro_f1",
    "test_loss",
    "parameters",
    "train_seconds",
    "images_per_second",
)

_HTML_STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #ddd; text-align: left; }
th { background: #f4f4f4; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:hover { background: #fafafa; }"""


@dataclass
class LeaderboardRow:
    """Aggregated metrics of all runs of one model with one set of settings."""

    rank: int
    model: str
    settings: dict
    runs: int
    seeds: list[int]
    mean_accuracy: float
    std_accuracy: float
    min_accuracy: float
    max_accuracy: float
    mean_macro_f1: float
    mean_test_loss: float
    parameters: int
    mean_train_seconds: float
    mean_images_per_second: float


def build_leaderboard(records: Iterable[RunRecord]) -> list[LeaderboardRow]:
    """Group runs by model and settings, and rank the groups by mean test accuracy.

    Ties are broken by mean macro F1 (higher first), then by model name and the
    settings, so the order never depends on the order of the records.
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        key = (record.model, _canonical_json(record.settings))
        groups.setdefault(key, []).append(record)

    rows = [_aggregate(runs) for runs in groups.values()]
    rows.sort(
        key=lambda row: (
            -row.mean_accuracy,
            -row.mean_macro_f1,
            row.model,
            _canonical_json(row.settings),
        )
    )
    for rank, row in enumerate(rows, start=1):
        row.rank = rank
    return rows


def format_leaderboard(rows: list[LeaderboardRow], fmt: str = "markdown") -> str:
    """Render leaderboard rows as a Markdown table, CSV text or a standalone HTML page."""
    if fmt == "markdown":
        return _format_markdown(rows)
    if fmt == "csv":
        return _format_csv(rows)
    if fmt == "html":
        return _format_html(rows)
    raise ConfigError(f"Unknown leaderboard format '{fmt}'. Choose one of: {', '.join(FORMATS)}.")


def format_settings(settings: dict) -> str:
    """Return settings as a compact 'key=value' list with sorted keys, e.g. 'epochs=15, hidden=512-512'.

    Nested dicts become dotted keys, lists are joined with '-', and empty settings give '-'.
    """
    pairs = sorted(_flatten(settings).items())
    if not pairs:
        return "-"
    return ", ".join(f"{key}={_format_value(value)}" for key, value in pairs)


def _aggregate(runs: list[RunRecord]) -> LeaderboardRow:
    accuracies = [run.test_accuracy for run in runs]
    return LeaderboardRow(
        rank=0,
        model=runs[0].model,
        settings=runs[0].settings,
        runs=len(runs),
        seeds=sorted(run.seed for run in runs),
        mean_accuracy=statistics.fmean(accuracies),
        # statistics.stdev is the sample standard deviation (ddof=1), undefined for one run.
        std_accuracy=statistics.stdev(accuracies) if len(runs) > 1 else 0.0,
        min_accuracy=min(accuracies),
        max_accuracy=max(accuracies),
        mean_macro_f1=statistics.fmean(run.macro_f1 for run in runs),
        mean_test_loss=statistics.fmean(run.test_loss for run in runs),
        # Runs with the same model and settings have the same parameter count unless
        # the plugin changed the architecture between runs, in which case the
        # largest count is shown.
        parameters=max(run.parameters for run in runs),
        mean_train_seconds=statistics.fmean(run.train_seconds for run in runs),
        mean_images_per_second=statistics.fmean(run.images_per_second for run in runs),
    )


def _canonical_json(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def _flatten(settings: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return "-".join(_format_value(item) for item in value)
    if isinstance(value, dict):
        # Only a dict inside a list or an empty dict gets here, because _flatten expands the others.
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _display_cells(row: LeaderboardRow) -> list[str]:
    """Return the human-readable cells of one row, in the order of _COLUMNS."""
    if row.runs > 1:
        spread = (
            f"±{row.std_accuracy * 100:.2f} "
            f"({row.min_accuracy * 100:.2f}–{row.max_accuracy * 100:.2f})"
        )
    else:
        spread = "-"
    return [
        str(row.rank),
        row.model,
        format_settings(row.settings),
        str(row.runs),
        f"{row.mean_accuracy * 100:.2f}%",
        spread,
        f"{row.mean_macro_f1:.4f}",
        f"{row.mean_test_loss:.4f}",
        f"{row.parameters:,}",
        f"{row.mean_train_seconds:.1f}",
        f"{row.mean_images_per_second:.0f}",
    ]


def _format_markdown(rows: list[LeaderboardRow]) -> str:
    if not rows:
        return EMPTY_MESSAGE + "\n"

    titles = [title for title, _ in _COLUMNS]
    body = [[_escape_markdown(cell) for cell in _display_cells(row)] for row in rows]
    # Padding every column to its widest cell keeps the raw text readable in a terminal.
    widths = [max(len(line[index]) for line in [titles, *body]) for index in range(len(_COLUMNS))]
    widths = [max(width, 4) for width in widths]

    def render(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if numeric else cell.ljust(width)
            for cell, width, (_, numeric) in zip(cells, widths, _COLUMNS)
        ]
        return "| " + " | ".join(padded) + " |"

    separator = [
        "-" * (width - 1) + ":" if numeric else "-" * width
        for width, (_, numeric) in zip(widths, _COLUMNS)
    ]
    lines = [render(titles), render(separator), *(render(cells) for cells in body)]
    return "\n".join(lines) + "\n"


def _escape_markdown(cell: str) -> str:
    # A bare pipe would end the cell, and a line break would end the table row.
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _format_csv(rows: list[LeaderboardRow]) -> str:
    buffer = io.StringIO()
    # "\n" line endings, so that text written with Path.write_text on Windows does not get "\r\r\n".
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow(
            [
                row.rank,
                row.model,
                format_settings(row.settings),
                row.runs,
                f"{row.mean_accuracy:.6f}",
                f"{row.std_accuracy:.6f}",
                f"{row.min_accuracy:.6f}",
                f"{row.max_accuracy:.6f}",
                f"{row.mean_macro_f1:.6f}",
                f"{row.mean_test_loss:.6f}",
                row.parameters,
                f"{row.mean_train_seconds:.3f}",
                f"{row.mean_images_per_second:.1f}",
            ]
        )
    return buffer.getvalue()


def _format_html(rows: list[LeaderboardRow]) -> str:
    if rows:
        content = _html_table(rows)
    else:
        message = html.escape(EMPTY_MESSAGE).replace("`zoo run mlp`", "<code>zoo run mlp</code>")
        content = f"<p>{message}</p>"
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        "<title>zoo leaderboard</title>\n"
        f"<style>\n{_HTML_STYLE}\n</style>\n"
        "</head>\n"
        "<body>\n"
        "<h1>zoo leaderboard</h1>\n"
        f"{content}\n"
        "</body>\n"
        "</html>\n"
    )


def _html_table(rows: list[LeaderboardRow]) -> str:
    def cell(tag: str, text: str, numeric: bool) -> str:
        attribute = ' class="num"' if numeric else ""
        return f"<{tag}{attribute}>{html.escape(text)}</{tag}>"

    header = "".join(cell("th", title, numeric) for title, numeric in _COLUMNS)
    lines = ["<table>", "<thead>", f"<tr>{header}</tr>", "</thead>", "<tbody>"]
    for row in rows:
        cells = "".join(
            cell("td", text, numeric) for text, (_, numeric) in zip(_display_cells(row), _COLUMNS)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)
