"""Measure what the fused AdamW step and the padded heap save on a CPU training step.

Times training steps (forward, backward, optimizer step) of one backbone on
random 32-image batches, in a fresh process per variant, because a heap setting
cannot be undone inside a process:

- ``loop``: AdamW's default per-tensor loop, glibc's default heap;
- ``fused``: the fused AdamW kernel that zoo uses, default heap;
- ``fused+pad``: the fused kernel and 256 MiB kept at the top of the heap, as
  ``zoo run`` and the conformance kit set it up.

Prints the median step time of each variant and its ratio to ``loop``.

    python benchmarks/training_step.py [--model timm/selecsls42] [--input-size 32] [--steps 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

VARIANTS = ("loop", "fused", "fused+pad")
WARMUP_STEPS = 2


def measure(model: str, input_size: int, steps: int, threads: int, variant: str) -> list[float]:
    """Return the seconds of each timed training step of ``model`` in this process."""
    import torch

    from zoo_core import runner
    from zoo_core.config import build_config
    from zoo_core.plugins import PluginHost
    from zoo_core.torch_training import adamw, classification_loss

    torch.set_num_threads(threads)
    if variant == "fused+pad" and not runner.pad_heap():
        raise SystemExit("this system's C library does not take a heap pad (glibc on Linux does)")
    plugin_name, name = model.split("/", 1)
    info = PluginHost().get(plugin_name)
    plugin, spec = info.plugin, info.models[name]
    config = build_config(model, spec.training, spec.settings, assignments=[f"input_size={input_size}", "pretrained=false"])
    torch.manual_seed(0)
    classifier, _, _ = plugin.build(name, config.settings, seed=0)
    classifier.train()
    if variant == "loop":
        optimizer = torch.optim.AdamW(classifier.parameters(), lr=1e-3, weight_decay=0.05, foreach=False)
    else:
        optimizer = adamw(classifier.parameters(), 1e-3, 0.05, "cpu")
    images = torch.rand(32, 1, 28, 28)
    labels = torch.randint(0, 10, (32,))
    seconds = []
    for step in range(WARMUP_STEPS + steps):
        started = time.perf_counter()
        loss = classification_loss(classifier(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= WARMUP_STEPS:
            seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="timm/selecsls42", help="PLUGIN/MODEL of a backbone plugin (default: timm/selecsls42)")
    parser.add_argument("--input-size", type=int, default=32, help="input size in pixels (default: 32)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per variant (default: 12)")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default: 1)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be at least 1")

    if args.variant:
        print(json.dumps(measure(args.model, args.input_size, args.steps, args.threads, args.variant)))
        return

    print(f"{args.model} at {args.input_size} pixels, batch 32, {args.threads} thread(s), {args.steps} timed steps")
    medians = {}
    for variant in VARIANTS:
        command = [sys.executable, __file__, "--variant", variant, "--model", args.model,
                   "--input-size", str(args.input_size), "--steps", str(args.steps), "--threads", str(args.threads)]
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise SystemExit(f"the {variant} measurement failed:\n{finished.stderr.strip()}")
        medians[variant] = statistics.median(json.loads(finished.stdout.strip().splitlines()[-1]))
        ratio = medians[variant] / medians["loop"]
        print(f"{variant:<10} {medians[variant] * 1000:7.0f} ms per step  {ratio:5.2f}x of loop")


if __name__ == "__main__":
    main()
