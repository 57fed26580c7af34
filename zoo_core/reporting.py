"""The one training output format every plugin shares.

While an epoch runs: a progress bar on a terminal, and every ``log_interval``
batches a line ``Epoch: E Batch: B loss: X`` (the loss averaged over the
batches since the last line). After each epoch: one line with the train loss
and the validation loss and accuracy. ``quiet`` silences all of it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class TrainingReporter:
    """Prints progress, loss lines and per-epoch validation results."""

    def __init__(self, epochs: int, log_interval: int = 100, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.log_interval = log_interval
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar: tqdm | None = None
        self._epoch = 0
        self._running_loss = 0.0
        self._running_count = 0
        self._started = 0.0

    def write(self, line: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def epoch_start(self, epoch: int, num_batches: int) -> None:
        """Start epoch ``epoch`` (1-based) of ``num_batches`` batches."""
        self._epoch = epoch
        self._running_loss = 0.0
        self._running_count = 0
        self._started = time.perf_counter()
        if self.interactive and not self.quiet:
            self._bar = tqdm(
                total=num_batches, desc=f"Epoch {epoch}/{self.epochs}", unit="batch", file=self.stream, leave=False
            )

    def batch_end(self, batch: int, loss: float) -> None:
        """Record the loss of batch ``batch`` (1-based) of the current epoch."""
        self._running_loss += loss
        self._running_count += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if batch % self.log_interval == 0:
            mean_loss = self._running_loss / self._running_count
            self.write(f"Epoch: {self._epoch} Batch: {batch} loss: {mean_loss:.4f}")
            self._running_loss = 0.0
            self._running_count = 0

    def epoch_end(self, train_loss: float, val_loss: float, val_accuracy: float) -> None:
        """Close the epoch and print its summary; ``val_accuracy`` is a fraction."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        seconds = time.perf_counter() - self._started
        self.write(
            f"Epoch {self._epoch}/{self.epochs}: train loss {train_loss:.4f}, "
            f"val loss {val_loss:.4f}, val accuracy {val_accuracy * 100:.2f}% ({seconds:.1f} s)"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
