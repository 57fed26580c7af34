"""Train one model with several seeds and report each run's time and the mean test accuracy.

Each seed is a separate ``zoo run`` process, timed from start to exit, and
every run is kept, so ``zoo leaderboard`` ranks them afterwards. Arguments after
``--`` go to ``zoo run`` unchanged.

    python benchmarks/seeds.py mlp --seeds 0 1 2 --runs-dir runs -- --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model name for zoo run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run (default: 0 1 2)")
    parser.add_argument("--runs-dir", default="runs", help="folder for the kept runs (default: runs)")
    parser.add_argument("--target", type=float, help="mean test accuracy to reach, in percent, e.g. 98.2")
    parser.add_argument("--minutes", type=float, help="time limit per run in minutes, to report against")
    # Arguments after "--" go to zoo run. They are split off by hand, because argparse
    # cannot place a positional list after the variable-length --seeds option.
    argv = sys.argv[1:]
    zoo_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    runs_dir = Path(args.runs_dir)
    accuracies = []
    for seed in args.seeds:
        before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
        command = [sys.executable, "-m", "zoo_core.cli", "run", args.model, "--seed", str(seed),
                   "--runs-dir", str(runs_dir), "--quiet", *zoo_args]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        minutes = (time.perf_counter() - started) / 60
        (run_dir,) = [p for p in runs_dir.iterdir() if p not in before and p.is_dir() and not p.name.startswith(".")]
        accuracy = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"] * 100
        accuracies.append(accuracy)
        within = "" if args.minutes is None else f" ({'within' if minutes <= args.minutes else 'over'} {args.minutes:g} min)"
        print(f"{args.model} seed {seed}: test accuracy {accuracy:.2f}%, {minutes:.1f} min{within}, {run_dir.name}", flush=True)

    mean = statistics.mean(accuracies)
    verdict = "" if args.target is None else f" ({'meets' if mean >= args.target else 'misses'} {args.target:.2f}%)"
    print(f"{args.model} mean over seeds {args.seeds}: {mean:.2f}%{verdict}")


if __name__ == "__main__":
    main()
