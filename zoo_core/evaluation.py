"""Test metrics, the printed report, and the run's figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from zoo_core.data import NUM_CLASSES

CONFUSED_PAIRS = 3
PROBABILITY_FLOOR = 1e-12


@dataclass
class Metrics:
    """Test results of one model on one split."""

    accuracy: float
    macro_f1: float
    loss: float
    report: str
    confusion: np.ndarray
    confused_pairs: list[tuple[int, int, int, int]]
    per_class: dict[str, dict[str, float]]

    def summary(self) -> dict[str, object]:
        return {
            "test_accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "test_loss": self.loss,
            "per_class": self.per_class,
            "most_confused": [
                {"digits": [a, b], "count": total, "a_as_b": ab, "b_as_a": total - ab}
                for a, b, total, ab in self.confused_pairs
            ],
        }


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under (N, 10) ``probabilities``.

    Probabilities below PROBABILITY_FLOOR count as the floor, so one image
    adds at most -log(PROBABILITY_FLOOR), about 27.6, to the sum.
    """
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, PROBABILITY_FLOOR, 1.0)).mean())


def most_confused_pairs(confusion: np.ndarray, count: int = CONFUSED_PAIRS) -> list[tuple[int, int, int, int]]:
    """Return the digit pairs (a, b) with the most mistakes in either direction.

    Each item is (a, b, mistakes both ways, a predicted as b), a < b, most first.
    """
    pairs = []
    for a in range(confusion.shape[0]):
        for b in range(a + 1, confusion.shape[1]):
            total = int(confusion[a, b] + confusion[b, a])
            if total:
                pairs.append((a, b, total, int(confusion[a, b])))
    pairs.sort(key=lambda pair: (-pair[2], pair[0], pair[1]))
    return pairs[:count]


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, loss: float | None = None) -> Metrics:
    """Compute accuracy, macro F1, scikit-learn's report and the confusion matrix.

    ``loss`` is the model's own mean test loss; without it the cross-entropy
    of ``probabilities`` is used.
    """
    pred = probabilities.argmax(axis=1)
    classes = list(range(NUM_CLASSES))
    report = classification_report(labels, pred, labels=classes, digits=4, zero_division=0)
    per_class = classification_report(labels, pred, labels=classes, output_dict=True, zero_division=0)
    confusion = confusion_matrix(labels, pred, labels=classes)
    return Metrics(
        accuracy=float((pred == labels).mean()),
        macro_f1=float(f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
        loss=cross_entropy(probabilities, labels) if loss is None else float(loss),
        report=report,
        confusion=confusion,
        confused_pairs=most_confused_pairs(confusion),
        per_class={str(k): v for k, v in per_class.items() if k.isdigit()},
    )


def format_results(metrics: Metrics) -> str:
    """Return the report block printed after a run and by ``zoo evaluate``."""
    lines = [metrics.report.rstrip("\n"), ""]
    lines.append(f"Test loss: {metrics.loss:.4f}")
    lines.append(f"Test accuracy: {metrics.accuracy * 100:.2f}%")
    if metrics.confused_pairs:
        lines.append("Most confused digits:")
        for a, b, total, a_as_b in metrics.confused_pairs:
            lines.append(f"  {a} and {b}: {total} mistakes ({a} read as {b}: {a_as_b}, {b} read as {a}: {total - a_as_b})")
    return "\n".join(lines) + "\n"


def write_confusion_csv(confusion: np.ndarray, path: Path) -> None:
    """Write the confusion matrix with true digits as rows and predicted digits as columns."""
    header = "true\\pred," + ",".join(str(c) for c in range(confusion.shape[1]))
    rows = [f"{i}," + ",".join(str(int(v)) for v in row) for i, row in enumerate(confusion)]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def plot_confusion(confusion: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5.5))
    image = ax.imshow(confusion, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set(xlabel="Predicted digit", ylabel="True digit", title=title, xticks=range(10), yticks=range(10))
    threshold = confusion.max() / 2
    for i in range(confusion.shape[0]):
        for j in range(confusion.shape[1]):
            color = "white" if confusion[i, j] > threshold else "black"
            ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(range(1, len(history) + 1))
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    loss_ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    loss_ax.set(xlabel="Epoch", ylabel="Loss", title="Loss")
    loss_ax.legend()
    accuracy_ax.plot(epochs, [h["val_accuracy"] * 100 for h in history], marker="o", color="tab:green")
    accuracy_ax.set(xlabel="Epoch", ylabel="Validation accuracy (%)", title="Validation accuracy")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
