"""benchmarks/conformance_sweep.py: checks models in worker processes, resumes, and records timeouts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from zoo_core.conformance import CheckResult

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "conformance_sweep.py"

INVENTORY = [
    {"plugin": "timm", "model": "test_resnet", "family": "resnet", "input_size": 32, "parameters": 370_000},
    {"plugin": "timm", "model": "test_convnext", "family": "convnext", "input_size": 32, "parameters": 210_000},
    {"plugin": "timm", "model": "vgg11", "family": "vgg", "input_size": 32, "parameters": 128_810_000},
]


def sweep(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    results = tmp_path / "sweep.jsonl"
    command = [sys.executable, str(SCRIPT), "--plugins", "timm", "--workers", "1",
               "--eval-size", "200", "--results", str(results), "--table", str(tmp_path / "sweep.md"), *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)


def records(tmp_path: Path) -> dict[str, dict]:
    lines = (tmp_path / "sweep.jsonl").read_text(encoding="utf-8").splitlines()
    return {record["model"]: record for record in map(json.loads, lines)}


def test_sweep_resumes_and_writes_table(tmp_path):
    (tmp_path / "sweep.inventory.json").write_text(json.dumps(INVENTORY), encoding="utf-8")

    first = sweep(tmp_path)
    second = sweep(tmp_path)
    table = (tmp_path / "sweep.md").read_text(encoding="utf-8")

    assert "2 models to check, 0 already checked" in first.stdout
    assert "0 models to check, 2 already checked" in second.stdout
    assert {model: record["status"] for model, record in records(tmp_path).items()} == {
        "timm/test_resnet": "PASS", "timm/test_convnext": "PASS",
    }
    assert "Models: 2 PASS, 1 SKIP." in table
    assert "| timm/vgg11 | vgg | 128.8 | 32 | SKIP | - | - | over 100M parameters |" in table
    assert list(tmp_path.glob("*.worker*")) == []

    third = sweep(tmp_path, "--models", "test_resnet", "--recheck")
    assert "1 model to check, 1 already checked" in third.stdout
    assert len((tmp_path / "sweep.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    assert records(tmp_path)["timm/test_resnet"]["status"] == "PASS"


def test_sweep_records_timeouts(tmp_path):
    (tmp_path / "sweep.inventory.json").write_text(json.dumps(INVENTORY), encoding="utf-8")

    sweep(tmp_path, "--timeout", "1")

    found = records(tmp_path)
    assert set(found) == {"timm/test_resnet", "timm/test_convnext"}
    assert all(record["status"] == "FAIL" for record in found.values())
    # A model that finishes between two checks by the parent fails in the worker instead.
    assert all(record["failed"][-1].startswith(("timeout: still running after 1 s", "timeout: finished after"))
               for record in found.values())


def load_sweep_module():
    spec = importlib.util.spec_from_file_location("conformance_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def write_table(tmp_path: Path, lines: list[dict]) -> tuple[dict, str]:
    """Write ``lines`` as the sweep's records and the table from them, and return its counts and text."""
    results, table = tmp_path / "sweep.jsonl", tmp_path / "sweep.md"
    results.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    counts = load_sweep_module().write_table(INVENTORY, results, table, 100_000_000)
    return counts, table.read_text(encoding="utf-8")


def test_table_shows_second_try(tmp_path):
    first_try = ["accuracy: test accuracy 0.1260 on 1,000 images (must exceed 0.147; chance is 0.10)"]
    lines = [
        {"model": "timm/test_resnet", "epochs": 2, "status": "PASS", "seconds": 4.3, "failed": []},
        {"model": "timm/test_convnext", "epochs": 4, "first_try": first_try, "status": "PASS", "seconds": 25.0,
         "failed": []},
    ]
    counts, text = write_table(tmp_path, lines)

    assert counts["PASS"] == 2
    assert counts["slow"] == 1
    assert "| timm/test_resnet | resnet | 0.4 | 32 | PASS | 2 | 4.3 |  |" in text
    assert f"| timm/test_convnext | convnext | 0.2 | 32 | PASS | 4 | 25.0 | after 2 epochs, {first_try[0]} |" in text
    assert "checked again with 4: 1." in text


def test_table_shows_larger_input_try(tmp_path):
    first_try = ["accuracy: test accuracy 0.1170 on 1,000 images (must exceed 0.147; chance is 0.10)"]
    second_try = ["accuracy: test accuracy 0.1420 on 1,000 images (must exceed 0.147; chance is 0.10)"]
    line = {"model": "timm/test_resnet", "epochs": 4, "first_try": first_try, "input_size": 64,
            "second_try": second_try, "status": "PASS", "seconds": 40.0, "failed": []}
    counts, text = write_table(tmp_path, [line])

    assert counts["larger_input"] == 1
    assert (f"| timm/test_resnet | resnet | 0.4 | 64 | PASS | 4 | 40.0 | after 4 epochs at 32 pixels, "
            f"{second_try[0]}; after 2 epochs, {first_try[0]} |") in text
    assert "checked again with 4: 1, of which 1 again at 64 pixels." in text


def test_worker_retries_slow_starters(tmp_path, monkeypatch):
    module = load_sweep_module()
    calls = []
    message = "test accuracy 0.1300 on 1,000 images (must exceed 0.147; chance is 0.10)"
    near_chance = [f"accuracy: {message}"]

    def check(host, plugin_name, model, data, epochs, settings=()):
        calls.append((model, epochs, settings))
        passing = {"test_resnet": ("input_size=64",), "test_vit": ("lr=0.0003",)}
        outcome, text = ("PASS", "") if settings == passing.get(model) else ("FAIL", message)
        return [CheckResult(plugin_name, model, "accuracy", outcome, text, 0.0)]

    monkeypatch.setattr(module, "_check", check)
    # test_resnet's default input is 32 pixels, so it gets a last try at 64.
    # csatv2 starts at 64 pixels and gets none. test_vit passes at learning rate 3e-4.
    module.work(["timm/test_resnet", "timm/csatv2", "timm/test_vit"], tmp_path / "sweep.jsonl", 100, 100, 600)

    assert calls == [
        ("test_resnet", 2, ()), ("test_resnet", 4, ()), ("test_resnet", 4, ("lr=0.0003",)),
        ("test_resnet", 4, ("input_size=64",)),
        ("csatv2", 2, ()), ("csatv2", 4, ()), ("csatv2", 4, ("lr=0.0003",)),
        ("test_vit", 2, ()), ("test_vit", 4, ()), ("test_vit", 4, ("lr=0.0003",)),
    ]
    found = records(tmp_path)
    assert found["timm/test_resnet"]["status"] == "PASS"
    assert found["timm/test_resnet"]["input_size"] == 64
    assert found["timm/test_resnet"]["second_try"] == found["timm/test_resnet"]["lr_try"] == near_chance
    assert found["timm/csatv2"]["status"] == "FAIL"
    assert "input_size" not in found["timm/csatv2"]
    assert found["timm/test_vit"]["status"] == "PASS"
    assert found["timm/test_vit"]["lr"] == 3e-4
    assert "input_size" not in found["timm/test_vit"]


def test_table_shows_learning_rate_try(tmp_path):
    first_try = ["accuracy: test accuracy 0.1260 on 1,000 images (must exceed 0.147; chance is 0.10)"]
    second_try = ["accuracy: test accuracy 0.1160 on 1,000 images (must exceed 0.147; chance is 0.10)"]
    line = {"model": "timm/test_convnext", "epochs": 4, "first_try": first_try, "second_try": second_try,
            "lr": 3e-4, "status": "PASS", "seconds": 30.0, "failed": []}
    counts, text = write_table(tmp_path, [line])

    assert counts["lower_lr"] == 1
    assert counts["larger_input"] == 0
    assert (f"| timm/test_convnext | convnext | 0.2 | 32 | PASS | 4 | 30.0 | last try at learning rate 0.0003; "
            f"after 4 epochs at 32 pixels, {second_try[0]}; after 2 epochs, {first_try[0]} |") in text
    assert "checked again with 4: 1, of which 1 again at learning rate 0.0003." in text


def test_worker_fails_model_over_time(tmp_path, monkeypatch):
    module = load_sweep_module()

    def check(host, plugin_name, model, data, epochs, settings=()):
        time.sleep(1.1)
        return [CheckResult(plugin_name, model, "train", "PASS", "", 1.1)]

    monkeypatch.setattr(module, "_check", check)
    module.work(["timm/test_resnet"], tmp_path / "sweep.jsonl", 100, 100, 1)

    record = records(tmp_path)["timm/test_resnet"]
    assert record["status"] == "FAIL"
    assert record["failed"] == [f"timeout: finished after {record['seconds']:.1f} s, over the 1 s allowed"]
