"""Run the conformance kit on every torchvision and timm model up to a parameter limit.

Each model is checked with random weights (``pretrained=false``) at its
default input size, on the kit's default MNIST subset, with one PyTorch thread
per worker process. The first step builds every model on PyTorch's meta device
to count its parameters; models above ``--max-params`` are listed as skipped.
A model that fails only the accuracy or loss check after 64 training steps is
checked again with 128, and if it still fails only those checks, with 128 at
learning rate 3e-4 instead of 1e-3. If that fails too and its input is below
64 pixels, it is checked a last time with 128 steps at 64 pixels.

Results go to a JSON-lines file, one line per model, as each model finishes.
A second run with the same file checks only the models that have no line yet,
so an interrupted sweep resumes where it stopped. A worker that crashes or
spends more than ``--timeout`` seconds on one model is stopped, that model is
recorded as failed with the cause, and a new worker takes the rest. A model
that finishes after more than ``--timeout`` seconds, before its worker is
stopped, fails too.

The table (``--table``) lists every model with its result, time and, for a
failure, the failed checks and their messages.

    python benchmarks/conformance_sweep.py --workers 2
    python benchmarks/conformance_sweep.py --plugins timm --models resnet18,convnext_atto
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from zoo_core.conformance import (
    DEFAULT_EPOCHS, FAIL, RETRY_EPOCHS, RETRY_LR, CheckResult, check_plugin, check_with_retries, small_mnist,
)

HERE = Path(__file__).resolve().parent
DEFAULT_RESULTS = HERE / "results" / "conformance_sweep.jsonl"
DEFAULT_TABLE = HERE / "results" / "conformance_sweep.md"
DEFAULT_MAX_PARAMS = 100_000_000
PLUGINS = ("torchvision", "timm")
POLL_SECONDS = 2.0
OUTCOMES = ("PASS", "FAIL", "SKIP", "NOT RUN")
# A model whose input is below RETRY_INPUT_SIZE pixels and still fails only the
# learning checks after the retries of check_with_retries gets a last try at that size.
RETRY_INPUT_SIZE = 64


# -- inventory -------------------------------------------------------------------


def inventory(plugins: list[str]) -> list[dict]:
    """Return plugin, model, family, input size and parameter count of every model, built on the meta device."""
    from zoo_core.backbones.heads import empty_weights
    from zoo_core.plugins import PluginHost
    from zoo_core.torch_training import count_parameters

    host = PluginHost()
    rows = []
    for plugin_name in plugins:
        source = host.get(plugin_name).plugin.source
        for model in source.model_names():
            row = {"plugin": plugin_name, "model": model, "family": source.family(model)}
            try:
                row["input_size"] = source.default_input_size(model)
                with empty_weights():
                    row["parameters"] = count_parameters(source.build(model, 10, row["input_size"], False))
            except Exception as error:  # a model that cannot even be built is a finding of the sweep
                row["parameters"] = None
                row["build_error"] = f"{type(error).__name__}: {error}"
            rows.append(row)
    return rows


# -- worker ------------------------------------------------------------------------


def work(models: list[str], results: Path, limit: int, eval_size: int, timeout: int) -> None:
    """Check each PLUGIN/MODEL in turn and append one JSON line per model, after a 'started' line."""
    import torch

    from zoo_core.data import load_mnist
    from zoo_core.plugins import PluginHost

    torch.set_num_threads(1)
    host = PluginHost()
    data = small_mnist(load_mnist(), limit, eval_size)
    for qualified in models:
        plugin_name, model = qualified.split("/", 1)
        _append(results, {"model": qualified, "status": "started", "time": time.time()})
        started = time.perf_counter()
        # Thin mobile networks learn slowly from random weights at 32 pixels, where their
        # last stages see a 1x1 feature map: timm mobilenetv2_035 scores 0.139 after 128
        # steps and 0.161 after 512, but 0.172 after 128 steps at 64 pixels.
        small_input = host.get(plugin_name).plugin.source.default_input_size(model) < RETRY_INPUT_SIZE
        attempts = check_with_retries(
            lambda epochs, settings: _check(host, plugin_name, model, data, epochs, settings),
            DEFAULT_EPOCHS, RETRY_EPOCHS, RETRY_INPUT_SIZE if small_input else None,
        )
        record = {"model": qualified, **_retry_record(attempts)}
        failed = attempts[-1].failures
        seconds = time.perf_counter() - started
        if seconds > timeout:
            # The parent checks its workers every POLL_SECONDS, so a model can finish over its
            # time before the parent stops it. Such a model fails too.
            failed = [*failed, f"timeout: finished after {seconds:.1f} s, over the {timeout} s allowed"]
        record.update(status="FAIL" if failed else "PASS", seconds=round(seconds, 1), failed=failed)
        _append(results, record)


def _retry_record(attempts: list) -> dict:
    """Return a record's epochs, first_try, second_try, lr or lr_try, and input_size for the runs made."""
    record = {"epochs": attempts[-1].epochs}
    if len(attempts) > 1:
        record["first_try"] = attempts[0].failures
    for previous, attempt in zip(attempts, attempts[1:]):
        if any(setting.startswith("lr=") for setting in attempt.settings):
            record["second_try"] = previous.failures
            if attempt.failures:
                record["lr_try"] = attempt.failures
            else:
                record["lr"] = RETRY_LR
        elif any(setting.startswith("input_size=") for setting in attempt.settings):
            record["input_size"] = RETRY_INPUT_SIZE
    return record


def _check(host, plugin_name: str, model: str, data, epochs: int, settings: tuple[str, ...] = ()) -> list:
    """Run the kit on one model and return its results; an error before the checks becomes a failed setup check."""
    try:
        return check_plugin(host, plugin_name, [model], data=data, epochs=epochs, threads=1,
                            settings=["pretrained=false", *settings])
    except Exception as error:
        return [CheckResult(plugin_name, model, "setup", FAIL, f"{type(error).__name__}: {error}", 0.0)]


def _count(number: int, noun: str) -> str:
    """Return "1 model" or "2 models"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _append(path: Path, record: dict) -> None:
    with path.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(record) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def read_results(path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Return the finished records by model and the records of models started but not finished."""
    finished: dict[str, dict] = {}
    started: dict[str, dict] = {}
    if not path.exists():
        return finished, started
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed worker
        if record.get("status") == "started":
            started[record["model"]] = record
        elif "model" in record:
            finished[record["model"]] = record
            started.pop(record["model"], None)
    return finished, started


# -- parent --------------------------------------------------------------------------


@dataclass
class Worker:
    shard: list[str]
    results: Path
    process: subprocess.Popen | None = None


def start_worker(worker: Worker, args: argparse.Namespace) -> None:
    finished, _ = read_results(worker.results)
    remaining = [model for model in worker.shard if model not in finished]
    worker.shard = remaining
    if not remaining:
        worker.process = None
        return
    environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [sys.executable, __file__, "--worker", "--results", str(worker.results), "--limit", str(args.limit),
               "--eval-size", str(args.eval_size), "--timeout", str(args.timeout), "--models", ",".join(remaining)]
    # stderr goes to a file because an unread pipe would block the worker once full.
    with worker.results.with_suffix(".log").open("ab") as log:
        worker.process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=log)


def supervise(models: list[str], args: argparse.Namespace) -> None:
    """Run the models on ``args.workers`` processes, restarting a worker after a crash or a timeout."""
    shards = [models[index::args.workers] for index in range(args.workers)]
    workers = [Worker(shard, args.results.with_suffix(f".worker{index}.jsonl")) for index, shard in enumerate(shards)]
    for worker in workers:
        start_worker(worker, args)
    total = len(models)
    try:
        watch(workers, args, total)
    finally:
        for worker in workers:
            if worker.process is not None and worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()
        merge(args.results)


def watch(workers: list[Worker], args: argparse.Namespace, total: int) -> None:
    reported = -1
    while any(worker.process for worker in workers):
        time.sleep(POLL_SECONDS)
        for worker in workers:
            if worker.process is None:
                continue
            finished, started = read_results(worker.results)
            code = worker.process.poll()
            running = [record for model, record in started.items() if model in worker.shard]
            if code is None and running and time.time() - running[-1]["time"] > args.timeout:
                worker.process.kill()
                worker.process.wait()
                _append(worker.results, {"model": running[-1]["model"], "status": "FAIL", "seconds": args.timeout,
                                         "failed": [f"timeout: still running after {args.timeout} s"]})
                start_worker(worker, args)
            elif code is not None:
                if running:
                    log = worker.results.with_suffix(".log")
                    error = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
                    cause = error[-1] if error else "no message"
                    _append(worker.results, {"model": running[-1]["model"], "status": "FAIL", "seconds": 0.0,
                                             "failed": [f"crash: worker exited with status {code} ({cause})"]})
                start_worker(worker, args)
        done = sum(len(read_results(worker.results)[0]) for worker in workers)
        if done != reported:
            reported = done
            print(f"{done} of {_count(total, 'model')} checked", flush=True)


def worker_files(results: Path) -> list[Path]:
    return sorted(results.parent.glob(results.stem + ".worker*.jsonl"))


def merge(results: Path) -> None:
    """Append the finished records of worker files to the main results file and remove the worker files.

    A model's last record counts, so a record of a model checked again replaces its earlier one.
    """
    for path in worker_files(results):
        for record in read_results(path)[0].values():
            _append(results, record)
        path.unlink()
        path.with_suffix(".log").unlink(missing_ok=True)


# -- table --------------------------------------------------------------------------


def write_table(rows: list[dict], results: Path, table: Path, max_params: int) -> Counter:
    finished, _ = read_results(results)
    counts: Counter = Counter()
    lines = []
    for row in sorted(rows, key=lambda r: (r["plugin"], r["family"], r["model"])):
        qualified = f"{row['plugin']}/{row['model']}"
        parameters = row["parameters"]
        millions = f"{parameters / 1e6:.1f}" if parameters is not None else "-"
        default_size = row.get("input_size", "-")
        size = default_size
        epochs = "-"
        if parameters is None:
            result, seconds, cause = "FAIL", "-", f"build: {row['build_error']}"
        elif parameters > max_params:
            result, seconds, cause = "SKIP", "-", f"over {max_params / 1e6:.0f}M parameters"
        elif qualified in finished:
            record = finished[qualified]
            result, seconds = record["status"], f"{record['seconds']:.1f}"
            epochs = str(record.get("epochs", "-"))
            size = record.get("input_size", default_size)
            causes = list(record["failed"])
            if record.get("lr"):
                causes.insert(0, f"last try at learning rate {record['lr']:g}")
            if record.get("lr_try"):
                causes.append(f"after {RETRY_EPOCHS} epochs at learning rate {RETRY_LR:g}, " + "; ".join(record["lr_try"]))
            if record.get("lr") or record.get("lr_try"):
                counts["lower_lr"] += 1
            if "input_size" in record:
                counts["larger_input"] += 1
            if record.get("second_try"):
                causes.append(f"after {RETRY_EPOCHS} epochs at {default_size} pixels, " + "; ".join(record["second_try"]))
            if record.get("first_try"):
                counts["slow"] += 1
                causes.append("after 2 epochs, " + "; ".join(record["first_try"]))
            cause = "; ".join(causes)
        else:
            result, seconds, cause = "NOT RUN", "-", ""
        counts[result] += 1
        cause = cause.replace("|", "\\|").replace("\n", " ")
        if len(cause) > 300:
            cause = cause[:297] + "..."
        lines.append(f"| {qualified} | {row['family']} | {millions} | {size} | {result} | {epochs} | {seconds} | {cause} |")
    summary = ", ".join(f"{counts[key]} {key}" for key in OUTCOMES if counts[key])
    if counts["slow"]:
        summary += (f". Models that failed only the accuracy or loss check after 2 epochs (64 steps) "
                    f"and were checked again with {RETRY_EPOCHS}: {counts['slow']}")
    retried = [f"{counts['lower_lr']} again at learning rate {RETRY_LR:g}"] if counts["lower_lr"] else []
    if counts["larger_input"]:
        retried.append(f"{counts['larger_input']} again at {RETRY_INPUT_SIZE} pixels")
    if retried:
        summary += ", of which " + " and ".join(retried)
    header = [
        "# Conformance sweep",
        "",
        "Written by `benchmarks/conformance_sweep.py`: the conformance kit on every torchvision and timm model, "
        f"random weights, default input size, one thread per model, models up to {max_params / 1e6:.0f}M parameters. "
        f"The Input column gives the size of the last try.",
        "",
        f"Models: {summary}.",
        "",
        "| Model | Family | Params (M) | Input | Result | Epochs | Seconds | Cause of failure |",
        "|---|---|---:|---:|---|---:|---:|---|",
    ]
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    return counts


def smallest_per_family(rows: list[dict], max_params: float) -> list[dict]:
    """Return the cheapest model of each (plugin, family): smallest input size, then fewest parameters.

    Families whose every model is above ``max_params`` are left out.
    """
    smallest: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["parameters"] is None or row["parameters"] > max_params:
            continue
        key = (row["plugin"], row["family"])
        cost = (row["input_size"], row["parameters"], row["model"])
        best = smallest.get(key)
        if best is None or cost < (best["input_size"], best["parameters"], best["model"]):
            smallest[key] = row
    return [smallest[key] for key in sorted(smallest)]


def load_inventory(path: Path, plugins: list[str]) -> list[dict]:
    """Read the inventory file, first adding the plugins it lacks."""
    rows = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    missing = [name for name in plugins if name not in {row["plugin"] for row in rows}]
    if missing:
        started = time.perf_counter()
        added = inventory(missing)
        print(f"Built {len(added)} {' and '.join(missing)} models on the meta device in {time.perf_counter() - started:.0f} s")
        rows += added
        path.write_text(json.dumps(rows, indent=0) + "\n", encoding="utf-8")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugins", default=",".join(PLUGINS), help="comma-separated plugins (default: torchvision,timm)")
    parser.add_argument("--models", help="comma-separated models to check (default: all up to --max-params)")
    parser.add_argument("--recheck", action="store_true", help="check the --models again, even those with a result")
    parser.add_argument("--max-params", type=float, default=DEFAULT_MAX_PARAMS, help="parameter limit (default: 1e8)")
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes, one thread each (default: 2)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per model (default: 1200)")
    parser.add_argument("--limit", type=int, default=1000, help="training images per check (default: 1000)")
    parser.add_argument("--eval-size", type=int, default=1000, help="test images per check (default: 1000)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="JSON-lines results file, resumed when present")
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="markdown table to write")
    parser.add_argument("--smallest-per-family", action="store_true",
                        help="print the cheapest model of each family up to --max-params, and check nothing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers < 1 or args.timeout < 1:
        parser.error("--workers and --timeout must be at least 1")
    if args.recheck and not args.models:
        parser.error("--recheck needs --models: name the models to check again")

    if args.worker:
        work(args.models.split(","), args.results, args.limit, args.eval_size, args.timeout)
        return

    args.results.parent.mkdir(parents=True, exist_ok=True)
    plugins = [name.strip() for name in args.plugins.split(",") if name.strip()]
    all_rows = load_inventory(args.results.with_suffix(".inventory.json"), plugins)
    rows = [row for row in all_rows if row["plugin"] in plugins]
    if args.models:
        requested = {name.strip() for name in args.models.split(",")}
        rows = [row for row in rows if row["model"] in requested or f"{row['plugin']}/{row['model']}" in requested]
    if args.smallest_per_family:
        for row in smallest_per_family(rows, args.max_params):
            name = f"{row['plugin']}/{row['model']}"
            print(f"{json.dumps(name)},  # {row['family']}: {row['parameters'] / 1e6:.2f}M parameters, {row['input_size']} pixels")
        return
    merge(args.results)  # records of workers of an interrupted sweep
    finished, _ = read_results(args.results)
    if args.recheck:  # their new records are appended after the old ones, which they replace
        again = {f"{row['plugin']}/{row['model']}" for row in rows}
        finished = {model: record for model, record in finished.items() if model not in again}
    todo = [
        f"{row['plugin']}/{row['model']}" for row in sorted(rows, key=lambda r: r["parameters"] or 0)
        if row["parameters"] is not None and row["parameters"] <= args.max_params
        and f"{row['plugin']}/{row['model']}" not in finished
    ]
    print(f"{_count(len(todo), 'model')} to check, {len(finished)} already checked")
    try:
        if todo:
            supervise(todo, args)
    finally:
        counts = write_table(all_rows, args.results, args.table, int(args.max_params))
        print(f"Wrote {args.table}: " + ", ".join(f"{counts[key]} {key}" for key in OUTCOMES if counts[key]))


if __name__ == "__main__":
    main()
