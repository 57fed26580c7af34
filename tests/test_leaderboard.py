"""Tests for leaderboard aggregation, ranking and the Markdown, CSV and HTML renderings."""

from __future__ import annotations

import csv
import io
import statistics
from html.parser import HTMLParser

import pytest

from zoo_core.errors import ConfigError
from zoo_core.leaderboard import (
    CSV_HEADER,
    FORMATS,
    build_leaderboard,
    format_leaderboard,
    format_settings,
)
from zoo_core.results import RunRecord

SETTINGS = {"batch_size": 128, "epochs": 15, "hidden": [512, 512], "lr": 0.001}


def make_record(model="keras/mlp", seed=0, accuracy=0.98, settings=None, **overrides) -> RunRecord:
    values = dict(
        run_id=f"{model.replace('/', '-')}-s{seed}-{accuracy}",
        model=model,
        plugin=model.split("/")[0],
        settings=dict(SETTINGS) if settings is None else settings,
        seed=seed,
        test_accuracy=accuracy,
        macro_f1=0.97,
        test_loss=0.07,
        parameters=669_706,
        train_seconds=40.0,
        images_per_second=50_000.0,
        device="cpu",
        versions={"keras": "3.15.1"},
        created="2026-12-04T20:15:00+00:00",
        run_dir="/tmp/runs/x",
    )
    values.update(overrides)
    return RunRecord(**values)


def three_seed_rows():
    records = [
        make_record(seed=2, accuracy=0.99, macro_f1=0.985, test_loss=0.05, train_seconds=30.0),
        make_record(seed=0, accuracy=0.97, macro_f1=0.965, test_loss=0.09, train_seconds=50.0),
        make_record(seed=1, accuracy=0.98, macro_f1=0.975, test_loss=0.07, train_seconds=40.0),
    ]
    return build_leaderboard(records)


class TableCounter(HTMLParser):
    """Count table rows and collect cell text, checking that every opened tag is closed."""

    VOID_TAGS = {"meta", "br", "hr", "img", "link", "input"}

    def __init__(self):
        super().__init__()
        self.rows = 0
        self.cells: list[str] = []
        self.open_tags: list[str] = []
        self.unbalanced: list[str] = []
        self.declaration = ""
        self._in_cell = False

    def handle_decl(self, decl):
        self.declaration = decl

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID_TAGS:
            self.open_tags.append(tag)
        if tag == "tr":
            self.rows += 1
        if tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")

    def handle_endtag(self, tag):
        if not self.open_tags or self.open_tags.pop() != tag:
            self.unbalanced.append(tag)
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells[-1] += data


def parse_html(text: str) -> TableCounter:
    parser = TableCounter()
    parser.feed(text)
    parser.close()
    return parser


def parse_markdown_rows(text: str) -> list[list[str]]:
    """Split a pipe table into rows of stripped cells, honoring escaped pipes."""
    rows = []
    for line in text.strip().splitlines():
        cells, current, index = [], "", 1
        while index < len(line) - 1:
            char = line[index]
            if char == "\\":
                current += line[index + 1]
                index += 2
                continue
            if char == "|":
                cells.append(current.strip())
                current = ""
            else:
                current += char
            index += 1
        cells.append(current.strip())
        rows.append(cells)
    return rows


# Ranking


def test_rank_by_mean_accuracy():
    records = [
        make_record(model="keras/mlp", seed=0, accuracy=0.97),
        make_record(model="keras/mlp", seed=1, accuracy=0.99),
        make_record(model="keras/cnn", seed=0, accuracy=0.985),
    ]
    rows = build_leaderboard(records)
    assert [row.model for row in rows] == ["keras/cnn", "keras/mlp"]


def test_rank_numbers_start_at_one():
    records = [make_record(model=f"keras/m{index}", accuracy=0.9 + index / 100) for index in range(3)]
    rows = build_leaderboard(records)
    assert [row.rank for row in rows] == [1, 2, 3]


def test_rank_tie_broken_by_macro_f1():
    records = [
        make_record(model="keras/a", accuracy=0.98, macro_f1=0.970),
        make_record(model="keras/b", accuracy=0.98, macro_f1=0.975),
    ]
    rows = build_leaderboard(records)
    assert [row.model for row in rows] == ["keras/b", "keras/a"]


def test_rank_tie_broken_by_model_name():
    records = [
        make_record(model="keras/zeta", accuracy=0.98),
        make_record(model="keras/alpha", accuracy=0.98),
    ]
    rows = build_leaderboard(records)
    assert [row.model for row in rows] == ["keras/alpha", "keras/zeta"]


def test_rank_independent_of_input_order():
    records = [make_record(model=f"keras/m{index}", accuracy=0.98) for index in range(4)]
    forward = [row.model for row in build_leaderboard(records)]
    backward = [row.model for row in build_leaderboard(reversed(records))]
    assert forward == backward


def test_build_empty_input():
    assert build_leaderboard([]) == []


# Aggregation


def test_aggregate_single_row_for_seeds():
    assert len(three_seed_rows()) == 1


def test_aggregate_mean_accuracy():
    assert three_seed_rows()[0].mean_accuracy == pytest.approx(0.98)


def test_aggregate_sample_std():
    row = three_seed_rows()[0]
    assert row.std_accuracy == pytest.approx(0.01)
    assert row.std_accuracy == pytest.approx(statistics.stdev([0.97, 0.98, 0.99]))


def test_aggregate_min_max():
    row = three_seed_rows()[0]
    assert row.min_accuracy == 0.97
    assert row.max_accuracy == 0.99


def test_aggregate_runs_and_seeds():
    row = three_seed_rows()[0]
    assert row.runs == 3
    assert row.seeds == [0, 1, 2]


def test_aggregate_other_means():
    row = three_seed_rows()[0]
    assert row.mean_macro_f1 == pytest.approx(0.975)
    assert row.mean_test_loss == pytest.approx(0.07)
    assert row.mean_train_seconds == pytest.approx(40.0)
    assert row.mean_images_per_second == pytest.approx(50_000.0)
    assert row.parameters == 669_706


def test_aggregate_single_run_std_zero():
    rows = build_leaderboard([make_record()])
    assert rows[0].std_accuracy == 0.0


def test_group_by_settings():
    records = [
        make_record(seed=0, settings={"epochs": 5}),
        make_record(seed=1, settings={"epochs": 15}),
        make_record(seed=2, settings={"epochs": 15}),
    ]
    rows = build_leaderboard(records)
    assert sorted((row.settings["epochs"], row.runs) for row in rows) == [(5, 1), (15, 2)]


def test_group_ignores_key_order():
    records = [
        make_record(seed=0, settings={"epochs": 5, "lr": 0.01}),
        make_record(seed=1, settings={"lr": 0.01, "epochs": 5}),
    ]
    assert len(build_leaderboard(records)) == 1


def test_group_separates_models():
    records = [make_record(model="keras/mlp"), make_record(model="keras/cnn")]
    assert len(build_leaderboard(records)) == 2


# Settings text


def test_settings_sorted_key_value():
    assert format_settings(SETTINGS) == "batch_size=128, epochs=15, hidden=512-512, lr=0.001"


def test_settings_nested_dotted_keys():
    settings = {"optimizer": {"name": "adam", "lr": 0.001}, "epochs": 3}
    assert format_settings(settings) == "epochs=3, optimizer.lr=0.001, optimizer.name=adam"


def test_settings_booleans_and_none():
    assert format_settings({"augment": True, "scheduler": None}) == "augment=true, scheduler=none"


def test_settings_empty_dash():
    assert format_settings({}) == "-"


# Markdown


def test_markdown_header_and_separator():
    rows = parse_markdown_rows(format_leaderboard(three_seed_rows(), "markdown"))
    assert rows[0] == [
        "Rank",
        "Model",
        "Settings",
        "Runs",
        "Test accuracy",
        "Spread",
        "Macro F1",
        "Test loss",
        "Parameters",
        "Train s",
        "Images/s",
    ]
    assert rows[1][0].endswith(":")
    assert not rows[1][1].endswith(":")
    assert rows[1][4].endswith(":")


def test_markdown_row_values():
    rows = parse_markdown_rows(format_leaderboard(three_seed_rows(), "markdown"))
    assert rows[2] == [
        "1",
        "keras/mlp",
        "batch_size=128, epochs=15, hidden=512-512, lr=0.001",
        "3",
        "98.00%",
        "±1.00 (97.00–99.00)",
        "0.9750",
        "0.0700",
        "669,706",
        "40.0",
        "50000",
    ]


def test_markdown_single_run_spread_dash():
    rows = parse_markdown_rows(format_leaderboard(build_leaderboard([make_record()]), "markdown"))
    assert rows[2][5] == "-"


def test_markdown_row_count():
    records = [make_record(model=f"keras/m{index}") for index in range(4)]
    lines = format_leaderboard(build_leaderboard(records)).strip().splitlines()
    assert len(lines) == 2 + 4


def test_markdown_escapes_pipes():
    record = make_record(settings={"act": "relu|tanh"})
    text = format_leaderboard(build_leaderboard([record]), "markdown")
    assert "relu\\|tanh" in text
    assert parse_markdown_rows(text)[2][2] == "act=relu|tanh"


def test_markdown_is_default_format():
    rows = three_seed_rows()
    assert format_leaderboard(rows) == format_leaderboard(rows, "markdown")


# CSV


def test_csv_header():
    reader = csv.reader(io.StringIO(format_leaderboard(three_seed_rows(), "csv")))
    assert tuple(next(reader)) == CSV_HEADER


def test_csv_raw_numbers():
    rows = list(csv.DictReader(io.StringIO(format_leaderboard(three_seed_rows(), "csv"))))
    assert len(rows) == 1
    row = rows[0]
    assert row["rank"] == "1"
    assert row["model"] == "keras/mlp"
    assert row["runs"] == "3"
    assert row["test_accuracy"] == "0.980000"
    assert float(row["accuracy_std"]) == pytest.approx(0.01)
    assert row["accuracy_min"] == "0.970000"
    assert row["accuracy_max"] == "0.990000"
    assert float(row["macro_f1"]) == pytest.approx(0.975)
    assert float(row["test_loss"]) == pytest.approx(0.07)
    assert row["parameters"] == "669706"
    assert float(row["train_seconds"]) == pytest.approx(40.0)
    assert float(row["images_per_second"]) == pytest.approx(50_000.0)


def test_csv_quotes_settings_commas():
    rows = list(csv.DictReader(io.StringIO(format_leaderboard(three_seed_rows(), "csv"))))
    assert rows[0]["settings"] == "batch_size=128, epochs=15, hidden=512-512, lr=0.001"


# HTML


def test_html_standalone_document():
    text = format_leaderboard(three_seed_rows(), "html")
    assert text.startswith("<!doctype html>")
    assert parse_html(text).declaration.lower() == "doctype html"
    assert '<meta charset="utf-8">' in text
    assert "<style>" in text


def test_html_row_count():
    records = [make_record(model=f"keras/m{index}") for index in range(3)]
    parser = parse_html(format_leaderboard(build_leaderboard(records), "html"))
    assert parser.rows == 1 + 3


def test_html_tags_balanced():
    parser = parse_html(format_leaderboard(three_seed_rows(), "html"))
    assert parser.unbalanced == []
    assert parser.open_tags == []


def test_html_has_thead_tbody():
    text = format_leaderboard(three_seed_rows(), "html")
    assert "<thead>" in text
    assert "<tbody>" in text


def test_html_cell_values():
    parser = parse_html(format_leaderboard(three_seed_rows(), "html"))
    assert "98.00%" in parser.cells
    assert "±1.00 (97.00–99.00)" in parser.cells


def test_html_escapes_settings():
    record = make_record(settings={"note": "<b>&"})
    text = format_leaderboard(build_leaderboard([record]), "html")
    assert "note=&lt;b&gt;&amp;" in text
    assert "note=<b>" not in text


# Errors and empty leaderboards


def test_unknown_format_error():
    with pytest.raises(ConfigError) as caught:
        format_leaderboard(three_seed_rows(), "xlsx")
    message = str(caught.value)
    assert "'xlsx'" in message
    for name in FORMATS:
        assert name in message


def test_empty_markdown_message():
    assert format_leaderboard([], "markdown").strip() == "No runs yet. Train one with `zoo run mlp`."


def test_empty_csv_header_only():
    rows = list(csv.reader(io.StringIO(format_leaderboard([], "csv"))))
    assert rows == [list(CSV_HEADER)]


def test_empty_html_message():
    text = format_leaderboard([], "html")
    parser = parse_html(text)
    assert "No runs yet. Train one with <code>zoo run mlp</code>." in text
    assert parser.rows == 0
    assert parser.unbalanced == []
