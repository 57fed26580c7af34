"""The ``zoo`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Sequence

from zoo_core import __version__
from zoo_core.errors import ConfigError, ZooError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _host_and_catalog():
    from zoo_core.plugins import PluginHost
    from zoo_core.registry import Catalog

    host = PluginHost()
    return host, Catalog(host)


def _warn_broken_plugins(host) -> None:
    for name, info in host.plugins.items():
        if not info.loaded:
            print(f"zoo: warning: plugin {name!r} is not loaded: {info.error}", file=sys.stderr)


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def command_run(args: argparse.Namespace) -> int:
    from zoo_core import runner
    from zoo_core.config import build_config, read_config_file
    from zoo_core.evaluation import format_results

    host, catalog = _host_and_catalog()
    _warn_broken_plugins(host)
    resolved = catalog.resolve(args.model)
    options = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "limit": args.limit,
        "threads": args.threads,
        "device": args.device,
        "data_dir": args.data_dir,
        "runs_dir": args.runs_dir,
        "log_interval": args.log_interval,
        "quiet": args.quiet or None,
    }
    file_values = read_config_file(args.config) if args.config else {}
    config = build_config(
        resolved.qualified, resolved.training, resolved.settings, file_values, options,
        _backbone_assignments(args) + args.assignments,
    )
    outcome = runner.run(config, resolved, host)
    print()
    print(format_results(outcome.metrics), end="")
    print(f"Run kept in {outcome.run_dir}")
    return 0


def _backbone_assignments(args: argparse.Namespace) -> list[str]:
    """Turn the backbone shortcuts (--freeze, --weights, ...) into model settings."""
    assignments = []
    if args.weights and args.pretrained is False:
        raise ConfigError("--weights and --no-pretrained contradict each other: drop --no-pretrained to load the file")
    if args.freeze:
        assignments.append("freeze=true")
    if args.pretrained is not None:
        assignments.append(f"pretrained={'true' if args.pretrained else 'false'}")
    if args.weights:
        assignments.append(f"weights={json.dumps(args.weights)}")
    if args.input_size is not None:
        assignments.append(f"input_size={args.input_size}")
    if args.backbone_lr is not None:
        assignments.append(f"backbone_lr={args.backbone_lr}")
    return assignments


def command_evaluate(args: argparse.Namespace) -> int:
    from zoo_core import runner, runs
    from zoo_core.data import load_mnist
    from zoo_core.evaluation import format_results

    host, _ = _host_and_catalog()
    run_dir = runs.find_run(runs.runs_root(args.runs_dir), args.run)
    config, plugin, trained = runner.load_run(run_dir, host, args.device)
    data_dir = args.data_dir if args.data_dir is not None else config.data_dir
    data = load_mnist(data_dir)
    metrics, _ = runner.evaluate(host, plugin, trained, data, config)
    print(f"{config.model} from {run_dir}, evaluated on {len(data.test):,} test images")
    print()
    print(format_results(metrics), end="")
    return 0


def command_list(args: argparse.Namespace) -> int:
    host, catalog = _host_and_catalog()
    rows = []
    for row in catalog.rows():
        status = "yes" if row.available else f"no: {row.note}"
        aliases = ", ".join(row.aliases) or "-"
        rows.append([row.name, row.qualified, status, aliases, row.description])
    _print_table(["NAME", "QUALIFIED", "AVAILABLE", "ALIASES", "DESCRIPTION"], rows)
    _warn_broken_plugins(host)
    return 0


def command_plugins(args: argparse.Namespace) -> int:
    host, _ = _host_and_catalog()
    rows = []
    for name, info in sorted(host.plugins.items()):
        rows.append([
            name,
            info.package or "-",
            info.version or "-",
            info.contract or "-",
            str(len(info.models)),
            ", ".join(h.removeprefix("zoo_") for h in info.hooks) or "-",
            "ok" if info.loaded else f"error: {info.error}",
        ])
    _print_table(["PLUGIN", "PACKAGE", "VERSION", "CONTRACT", "MODELS", "HOOKS", "STATUS"], rows)
    return 0


def command_info(args: argparse.Namespace) -> int:
    host, catalog = _host_and_catalog()
    resolved = catalog.resolve(args.model)
    lines = [("model", resolved.qualified), ("description", resolved.description)]
    lines += [(key, value) for key, value in resolved.training.items()]
    lines += [(f"setting {key}", value) for key, value in resolved.settings.items()]
    if "zoo_info" in host.get(resolved.plugin).hooks:
        facts = host.call(resolved.plugin, "zoo_info", model=resolved.model, settings=resolved.settings) or {}
        lines += list(facts.items())
    width = max(len(key) for key, _ in lines) + 2
    for key, value in lines:
        print(f"{key + ':':<{width}}{value}")
    return 0


def command_cache(args: argparse.Namespace) -> int:
    from zoo_core.backbones.features import FeatureCache

    cache = FeatureCache()
    if args.action == "clear":
        removed, freed = cache.clear(args.model)
        print(f"Removed {removed} cached feature sets ({freed / 1e6:.1f} MB) from {cache.root}")
        return 0
    entries = cache.entries()
    if not entries:
        print(f"No cached features in {cache.root}")
        return 0
    rows = [
        [e.key, e.meta.get("model", "?"), str(e.meta.get("input_size", "?")), str(e.meta.get("weights", "?")),
         "x".join(str(n) for n in e.meta.get("shapes", {}).get("train", [])), f"{e.bytes / 1e6:.1f}", e.meta.get("created", "?")]
        for e in entries
    ]
    _print_table(["KEY", "MODEL", "INPUT", "WEIGHTS", "TRAIN FEATURES", "MB", "CREATED"], rows)
    print(f"{len(entries)} entries, {sum(e.bytes for e in entries) / 1e6:.1f} MB in {cache.root}")
    return 0


def _qualified_filter(model: str | None) -> str | None:
    """Turn a --model filter given as a plain name or alias into the qualified name the database stores."""
    if model is None or "/" in model:
        return model
    _, catalog = _host_and_catalog()
    return catalog.resolve(model).qualified


def command_runs(args: argparse.Namespace) -> int:
    from zoo_core import runs
    from zoo_core.results import DB_NAME, ResultsStore

    root = runs.runs_root(args.runs_dir)
    database = root / DB_NAME
    if not database.is_file():
        print(f"No runs in {root} yet. Train one with `zoo run mlp`.")
        return 0
    records = ResultsStore(database).list(model=_qualified_filter(args.model))
    rows = [
        [r.run_id, r.model, str(r.seed), f"{r.test_accuracy * 100:.2f}%", f"{r.train_seconds:.1f}", r.created]
        for r in records
    ]
    if not rows:
        print(f"No runs in {root} match.")
        return 0
    _print_table(["RUN", "MODEL", "SEED", "TEST ACC", "TRAIN S", "DATE"], rows)
    return 0


def command_leaderboard(args: argparse.Namespace) -> int:
    from zoo_core import runs
    from zoo_core.leaderboard import build_leaderboard, format_leaderboard
    from zoo_core.results import DB_NAME, ResultsStore

    root = runs.runs_root(args.runs_dir)
    database = root / DB_NAME
    records = ResultsStore(database).list(model=_qualified_filter(args.model)) if database.is_file() else []
    text = format_leaderboard(build_leaderboard(records), args.format)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise ZooError(f"cannot write the leaderboard to {args.output!r}: {error.strerror}; check that the folder exists") from None
        print(f"Leaderboard of {len(records)} run(s) written to {args.output}")
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


def command_check_plugin(args: argparse.Namespace) -> int:
    from zoo_core.conformance import TABLE_HEADERS, check_plugin
    from zoo_core.errors import ConfigError

    host, _ = _host_and_catalog()
    models = None
    if args.models is not None:
        models = [name.strip() for name in args.models.split(",") if name.strip()]
        if not models:
            raise ConfigError(f"--models {args.models!r} names no model: give model names separated by commas, like mlp,lstm")
    print(f"Checking plugin {args.plugin!r} on {args.limit:,} training images ...", file=sys.stderr)
    results = check_plugin(
        host, args.plugin, models,
        limit=args.limit, eval_size=args.eval_size, val_size=args.val_size, data_dir=args.data_dir, epochs=args.epochs,
        batch_size=args.batch_size, seed=args.seed, threads=args.threads, device=args.device, settings=args.assignments,
    )
    _print_table(TABLE_HEADERS, [result.row() for result in results])
    failed = sum(not result.passed for result in results)
    print(f"{len(results) - failed} of {len(results)} checks passed")
    return 1 if failed else 0


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir", metavar="DIR",
        help="folder of kept runs and the results database (default: $ZOO_RUNS_DIR, else ./runs)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo", description="Train, compare and use handwritten digit classifiers on MNIST."
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="train a model, test it and keep the run")
    run.add_argument("model", help="model name, qualified name PLUGIN/MODEL, or alias (see `zoo list`)")
    run.add_argument("--epochs", type=int, help="number of training epochs (default: the model's)")
    run.add_argument("--batch-size", type=int, help="images per training batch (default: the model's)")
    run.add_argument("--lr", type=float, help="peak learning rate (default: the model's)")
    run.add_argument("--seed", type=int, help="random seed for weights and shuffling (default: 0)")
    run.add_argument("--data-dir", metavar="DIR", help="MNIST IDX files to use (default: $ZOO_DATA_DIR, else the shipped copy)")
    run.add_argument("--limit", type=int, metavar="N", help="train on the first N images of the train split (default: all 50,000)")
    run.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: one per core)")
    run.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: auto, CUDA when available)")
    run.add_argument("--log-interval", type=int, metavar="N", help="print a loss line every N batches (default: 100)")
    run.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="set a model setting, e.g. --set dropout=0.3 or --set hidden=[256,256]; repeatable",
    )
    backbone = run.add_argument_group("backbone models (torchvision and timm plugins)")
    backbone.add_argument("--freeze", action="store_true", help="freeze the backbone and train only the new head (default: fine-tune all layers)")
    backbone.add_argument("--pretrained", dest="pretrained", action="store_true", default=None,
                          help="start from the model's default ImageNet weights (the default for backbone models)")
    backbone.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="start from random weights")
    backbone.add_argument("--weights", metavar="FILE", help="load backbone weights from a local safetensors or PyTorch file; a 1000-class head in it is dropped")
    backbone.add_argument("--input-size", type=int, metavar="PIXELS", help="square input size the 28x28 images are resized to (default: the family's, see `zoo info`)")
    backbone.add_argument("--backbone-lr", type=float, metavar="LR", help="learning rate of the backbone when fine-tuning (default: same as --lr)")
    run.add_argument("--config", metavar="FILE.yaml", help="YAML file of options and a 'settings' mapping; options on the command line win")
    run.add_argument("--quiet", action="store_true", help="print only the final report")
    _add_runs_dir(run)
    run.set_defaults(handler=command_run)

    evaluate = commands.add_parser("evaluate", help="reload a kept run and print its test report")
    evaluate.add_argument("run", help="run id (or a unique prefix of one) or run folder; see `zoo runs`")
    evaluate.add_argument("--data-dir", metavar="DIR", help="evaluate on the test files in DIR (default: the run's data)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    _add_runs_dir(evaluate)
    evaluate.set_defaults(handler=command_evaluate)

    listing = commands.add_parser("list", help="list every model with its plugin and availability")
    listing.set_defaults(handler=command_list)

    plugins = commands.add_parser("plugins", help="list discovered plugins and any load errors")
    plugins.set_defaults(handler=command_plugins)

    info = commands.add_parser("info", help="show a model's defaults and settings")
    info.add_argument("model", help="model name, qualified name or alias")
    info.set_defaults(handler=command_info)

    cache = commands.add_parser("cache", help="list or clear cached frozen-backbone features")
    cache.add_argument("action", nargs="?", choices=["list", "clear"], default="list", help="list (default) or clear")
    cache.add_argument("--model", help="with clear: only this qualified model name, e.g. torchvision/resnet50")
    cache.set_defaults(handler=command_cache)

    runs_parser = commands.add_parser("runs", help="list kept runs")
    runs_parser.add_argument("--model", help="only runs of this qualified model name, e.g. keras/mlp")
    _add_runs_dir(runs_parser)
    runs_parser.set_defaults(handler=command_runs)

    check = commands.add_parser(
        "check-plugin", help="train a plugin's models on a small MNIST subset and check that they honor the hook contract"
    )
    check.add_argument("plugin", help="plugin name, as listed by `zoo plugins`")
    check.add_argument("--models", metavar="M1,M2", help="comma-separated models of the plugin to check (default: all)")
    check.add_argument("--limit", type=int, default=1000, metavar="N", help="training images (default: 1000)")
    check.add_argument("--eval-size", type=int, default=1000, metavar="N", help="test images (default: 1000)")
    check.add_argument("--val-size", type=int, default=250, metavar="N", help="validation images (default: 250)")
    check.add_argument("--epochs", type=int, default=2, help="training epochs (default: 2)")
    check.add_argument("--batch-size", type=int, default=32, help="images per training batch (default: 32)")
    check.add_argument("--seed", type=int, default=0, help="random seed of every training the kit runs (default: 0)")
    check.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: one per core)")
    check.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu, where training is reproducible)")
    check.add_argument("--data-dir", metavar="DIR", help="MNIST IDX files to use (default: $ZOO_DATA_DIR, else the shipped copy)")
    check.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="model setting for every checked model, repeatable (--set pretrained=false checks backbones offline)",
    )
    check.set_defaults(handler=command_check_plugin)

    leaderboard = commands.add_parser("leaderboard", help="print the leaderboard generated from kept runs")
    leaderboard.add_argument("--format", default="markdown", help="markdown, csv or html (default: markdown)")
    leaderboard.add_argument("--output", metavar="FILE", help="write to FILE instead of the terminal")
    leaderboard.add_argument("--model", help="only runs of this qualified model name")
    _add_runs_dir(leaderboard)
    leaderboard.set_defaults(handler=command_leaderboard)
    return parser


def _terminate(signum, frame) -> None:
    # SystemExit unwinds like Ctrl+C, so a run in progress discards its partial folder.
    raise SystemExit(EXIT_TERMINATED)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args)
    except ZooError as error:
        if os.environ.get("ZOO_DEBUG"):
            traceback.print_exc()
        # One line: library messages (YAML parser positions, say) can span several.
        message = " ".join(str(error).split())
        print(f"zoo: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\nzoo: interrupted; the run was discarded and nothing was stored", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
