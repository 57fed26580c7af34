"""Test metrics and the printed report, checked against scikit-learn and hand-made confusion matrices."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from zoo_core.evaluation import (
    compute_metrics,
    cross_entropy,
    format_results,
    most_confused_pairs,
    plot_confusion,
    plot_learning_curves,
    write_confusion_csv,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_predictions(count: int = 600, accuracy: float = 0.8, seed: int = 3):
    """Return labels covering all ten digits and (count, 10) probabilities that are right about ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % 10
    rng.shuffle(labels)
    predicted = labels.copy()
    wrong = rng.random(count) > accuracy
    predicted[wrong] = rng.integers(0, 10, size=int(wrong.sum()))
    logits = rng.normal(size=(count, 10))
    logits[np.arange(count), predicted] += 10.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probabilities


@pytest.fixture(scope="module")
def predictions():
    return make_predictions()


def test_report_matches_sklearn(predictions):
    labels, probabilities = predictions
    predicted = probabilities.argmax(axis=1)

    metrics = compute_metrics(labels, probabilities)

    assert metrics.report == classification_report(labels, predicted, digits=4)


def test_accuracy_matches_sklearn(predictions):
    labels, probabilities = predictions

    metrics = compute_metrics(labels, probabilities)

    assert metrics.accuracy == pytest.approx(accuracy_score(labels, probabilities.argmax(axis=1)))


def test_macro_f1_matches_sklearn(predictions):
    labels, probabilities = predictions

    metrics = compute_metrics(labels, probabilities)

    assert metrics.macro_f1 == pytest.approx(f1_score(labels, probabilities.argmax(axis=1), average="macro"))


def test_confusion_matches_sklearn(predictions):
    labels, probabilities = predictions

    metrics = compute_metrics(labels, probabilities)

    np.testing.assert_array_equal(metrics.confusion, confusion_matrix(labels, probabilities.argmax(axis=1)))


def test_per_class_lists_ten_digits(predictions):
    labels, probabilities = predictions
    expected = classification_report(labels, probabilities.argmax(axis=1), output_dict=True)

    metrics = compute_metrics(labels, probabilities)

    assert list(metrics.per_class) == [str(digit) for digit in range(10)]
    assert metrics.per_class["3"] == expected["3"]


def test_missing_digit_keeps_ten_rows():
    labels = np.array([0, 1, 2, 2], dtype=np.int64)
    probabilities = np.eye(10)[[0, 1, 2, 1]]

    metrics = compute_metrics(labels, probabilities)

    assert metrics.confusion.shape == (10, 10)
    assert len(metrics.per_class) == 10
    assert metrics.per_class["9"]["support"] == 0
    assert metrics.accuracy == 0.75


def test_loss_defaults_to_cross_entropy(predictions):
    labels, probabilities = predictions

    metrics = compute_metrics(labels, probabilities)

    assert metrics.loss == pytest.approx(cross_entropy(probabilities, labels))


def test_given_loss_is_kept(predictions):
    labels, probabilities = predictions

    metrics = compute_metrics(labels, probabilities, loss=0.125)

    assert metrics.loss == 0.125


def test_cross_entropy_by_hand():
    probabilities = np.array([[0.5, 0.5] + [0.0] * 8, [0.1, 0.2, 0.7] + [0.0] * 7])
    labels = np.array([0, 2])

    assert cross_entropy(probabilities, labels) == pytest.approx(-(math.log(0.5) + math.log(0.7)) / 2)


def test_cross_entropy_clips_zero_probability():
    probabilities = np.zeros((1, 10))
    probabilities[0, 1] = 1.0

    assert cross_entropy(probabilities, np.array([0])) == pytest.approx(-math.log(1e-12))


def hand_made_confusion() -> np.ndarray:
    confusion = np.diag(np.full(10, 50))
    confusion[4, 9] = 5
    confusion[9, 4] = 3
    confusion[5, 3] = 6
    confusion[3, 5] = 2
    confusion[7, 1] = 4
    confusion[0, 6] = 1
    return confusion


def test_confused_pairs_by_hand():
    pairs = most_confused_pairs(hand_made_confusion())

    assert pairs == [(3, 5, 8, 2), (4, 9, 8, 5), (1, 7, 4, 0)]


def test_confused_pairs_count():
    pairs = most_confused_pairs(hand_made_confusion(), count=10)

    assert pairs[-1] == (0, 6, 1, 1)
    assert len(pairs) == 4


def test_confused_pairs_perfect_model():
    assert most_confused_pairs(np.diag(np.arange(10))) == []


def test_summary_splits_directions():
    labels = np.array([4, 4, 9, 3, 5, 5], dtype=np.int64)
    probabilities = np.eye(10)[[9, 9, 4, 5, 5, 3]]

    summary = compute_metrics(labels, probabilities).summary()

    assert summary["most_confused"][0] == {"digits": [4, 9], "count": 3, "a_as_b": 2, "b_as_a": 1}
    assert summary["most_confused"][1] == {"digits": [3, 5], "count": 2, "a_as_b": 1, "b_as_a": 1}
    assert summary["test_accuracy"] == pytest.approx(1 / 6)


def test_confusion_csv_round_trip(tmp_path):
    confusion = hand_made_confusion()
    path = tmp_path / "confusion_matrix.csv"

    write_confusion_csv(confusion, path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))

    assert rows[0] == ["true\\pred"] + [str(digit) for digit in range(10)]
    assert [row[0] for row in rows[1:]] == [str(digit) for digit in range(10)]
    np.testing.assert_array_equal(np.array([row[1:] for row in rows[1:]], dtype=int), confusion)


def test_format_results_one_loss_line(predictions):
    labels, probabilities = predictions

    text = format_results(compute_metrics(labels, probabilities, loss=0.3456789))
    loss_lines = [line for line in text.splitlines() if line.startswith("Test loss")]

    assert loss_lines == ["Test loss: 0.3457"]
    assert float(loss_lines[0].removeprefix("Test loss: ")) == pytest.approx(0.3457)


def test_format_results_one_accuracy_line(predictions):
    labels, probabilities = predictions
    metrics = compute_metrics(labels, probabilities)

    text = format_results(metrics)
    accuracy_lines = [line for line in text.splitlines() if line.startswith("Test accuracy")]

    assert len(accuracy_lines) == 1
    assert re.fullmatch(r"Test accuracy: \d{1,3}\.\d{2}%", accuracy_lines[0])
    assert accuracy_lines[0] == f"Test accuracy: {metrics.accuracy * 100:.2f}%"


@pytest.mark.parametrize(("correct", "expected"), [(10, "100.00%"), (0, "0.00%"), (7, "70.00%")])
def test_format_results_accuracy_values(correct, expected):
    labels = np.arange(10, dtype=np.int64)
    predicted = np.where(np.arange(10) < correct, labels, (labels + 1) % 10)

    text = format_results(compute_metrics(labels, np.eye(10)[predicted]))

    assert f"Test accuracy: {expected}\n" in text


def test_format_results_starts_with_report(predictions):
    labels, probabilities = predictions
    metrics = compute_metrics(labels, probabilities)

    text = format_results(metrics)

    assert text.startswith(metrics.report.rstrip("\n") + "\n\nTest loss: ")
    assert text.endswith("\n")


def test_format_results_confused_lines():
    labels = np.array([4, 4, 9], dtype=np.int64)
    probabilities = np.eye(10)[[9, 9, 4]]

    text = format_results(compute_metrics(labels, probabilities))

    assert "Most confused digits:\n  4 and 9: 3 mistakes (4 read as 9: 2, 9 read as 4: 1)\n" in text


def test_format_results_perfect_model():
    labels = np.arange(10, dtype=np.int64)

    text = format_results(compute_metrics(labels, np.eye(10)))

    assert "Most confused digits" not in text


def test_plots_write_png_files(tmp_path):
    history = [
        {"train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.7},
        {"train_loss": 0.5, "val_loss": 0.6, "val_accuracy": 0.8},
    ]

    plot_confusion(hand_made_confusion(), tmp_path / "confusion.png", "test model")
    plot_learning_curves(history, tmp_path / "curves.png", "test model")

    assert (tmp_path / "confusion.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
