"""Measure what the feature cache saves when a backbone is frozen.

Runs ``zoo run MODEL --freeze`` twice in one process run, against an empty,
temporary feature cache: the first run extracts and caches the backbone's
features, the second reuses them. Prints in seconds and as ratios:

- the extraction pass over train, validation and test images, with images/s;
- each epoch of head training on the cached features (target: at most 2% of
  the extraction pass);
- the whole second run against the whole first run.

    python benchmarks/frozen_features.py [--model resnet50] [--epochs 3] [--pretrained]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD_EPOCH_TARGET = 0.02


def run_once(args: argparse.Namespace, runs_dir: Path, env: dict[str, str]) -> tuple[float, dict]:
    command = [
        sys.executable, "-m", "zoo_core.cli", "run", args.model, "--freeze",
        "--epochs", str(args.epochs), "--runs-dir", str(runs_dir), "--quiet",
        "--pretrained" if args.pretrained else "--no-pretrained",
    ]
    if args.input_size:
        command += ["--input-size", str(args.input_size)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    before = {p.name for p in runs_dir.iterdir()} if runs_dir.is_dir() else set()
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir() and p.name not in before and not p.name.startswith(".")]
    return seconds, json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="backbone model name (default: resnet50)")
    parser.add_argument("--epochs", type=int, default=3, help="head training epochs per run (default: 3)")
    parser.add_argument("--input-size", type=int, help="input size in pixels (default: the model's)")
    parser.add_argument("--threads", type=int, help="PyTorch CPU threads (default: all cores)")
    parser.add_argument("--pretrained", action="store_true", help="use the ImageNet weights (default: random init, no download)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as scratch:
        env = {**os.environ, "ZOO_CACHE_DIR": str(Path(scratch) / "cache")}
        runs_dir = Path(scratch) / "runs"
        first_seconds, first = run_once(args, runs_dir, env)
        second_seconds, second = run_once(args, runs_dir, env)

    details = first["training_details"]
    extract = details["extract_seconds"]
    print(f"{args.model} --freeze, {args.epochs} head epochs, {'pretrained' if args.pretrained else 'random'} weights")
    print(f"extraction pass: {extract:.1f} s ({details['extract_images_per_second']:.0f} images/s)")
    for epoch, entry in enumerate(first["history"], start=1):
        ratio = entry["seconds"] / extract
        verdict = "ok" if ratio <= HEAD_EPOCH_TARGET else "over target"
        print(f"head epoch {epoch}: {entry['seconds']:.2f} s = {ratio:.2%} of extraction (target <= {HEAD_EPOCH_TARGET:.0%}: {verdict})")
    assert second["training_details"]["features_cached"], "the second run did not reuse the cache"
    print(f"first run (extracts): {first_seconds:.1f} s, test accuracy {first['test_accuracy']:.2%}")
    print(f"second run (cached):  {second_seconds:.1f} s, test accuracy {second['test_accuracy']:.2%}")
    print(f"second / first: {second_seconds / first_seconds:.2f}")


if __name__ == "__main__":
    main()
