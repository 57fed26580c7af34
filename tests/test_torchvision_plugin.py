"""The torchvision plugin: every architecture, weights offline and from files, frozen features."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import models

from zoo_core.backbones.adapter import InputAdapter
from zoo_core.backbones.features import FeatureCache
from zoo_core.backbones.heads import pool_over_grid
from zoo_core.config import RunConfig
from zoo_core.data import load_mnist
from zoo_core.errors import ConfigError, DataError, ZooError
from zoo_core.reporting import TrainingReporter
from zoo_core.torch_training import adamw, classification_loss, follow_data_with_batch_norm, split_output
from zoo_torchvision import plugin

ALL_MODELS = sorted(models.list_models(module=models))


def settings_for(model: str, **changes) -> dict:
    settings = plugin.default_settings(model)
    settings.update(changes)
    return settings


def _config(model: str, data_dir: Path, **settings) -> RunConfig:
    return RunConfig(
        model=f"torchvision/{model}", epochs=1, batch_size=50, lr=1e-3, seed=0, device="cpu",
        data_dir=str(data_dir), quiet=True, settings=settings_for(model, **settings),
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ALL_MODELS)
def test_architecture_forward_backward(model):
    torch.manual_seed(0)
    classifier, heads, _ = plugin.build(model, settings_for(model, pretrained=False), seed=0)
    images = torch.from_numpy(load_mnist().test.images[:2]).unsqueeze(1).float() / 255

    classifier.train()
    output = classifier(images)
    logits, _ = split_output(output)
    loss = classification_loss(output, torch.tensor([7, 2]))  # auxiliary heads included
    loss.backward()

    assert logits.shape == (2, 10)
    assert torch.isfinite(loss)
    assert heads, "no head parameters were found"
    head_grads = [p.grad for n, p in classifier.network.named_parameters() if n in heads]
    assert all(g is not None for g in head_grads)


def test_torchvision_provides_every_model():
    provided = {spec.name for spec in plugin.zoo_models()}
    assert provided == set(ALL_MODELS)
    assert len(provided) >= 80


def test_pretrained_loads_from_hub_cache(hub_dir, no_network):
    reference = models.resnet18(weights=None)
    torch.save(reference.state_dict(), hub_dir / "resnet18-f37072fd.pth")

    classifier, _, weights_id = plugin.build("resnet18", settings_for("resnet18"), seed=0)

    assert weights_id == "ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(classifier.network.conv1.weight, reference.conv1.weight)
    assert torch.equal(classifier.network.layer4[1].bn2.running_mean, reference.layer4[1].bn2.running_mean)
    assert classifier.network.fc.out_features == 10


def test_pretrained_offline_error_names_file(hub_dir, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ZooError) as error:
        plugin.build("resnet18", settings_for("resnet18"), seed=0)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(hub_dir) in message
    assert "--no-pretrained" in message


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_drops_imagenet_head(tmp_path, no_network, suffix):
    reference = models.resnet18(weights=None)
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(reference.state_dict(), str(path))
    else:
        torch.save({"state_dict": reference.state_dict()}, path)

    classifier, _, weights_id = plugin.build("resnet18", settings_for("resnet18", weights=str(path)), seed=0)

    assert weights_id.startswith("file:")
    assert torch.equal(classifier.network.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert classifier.network.fc.weight.shape == (10, 512)


def test_weights_file_wrong_architecture(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(ZooError, match="do not fit this architecture"):
        plugin.build("resnet18", settings_for("resnet18", weights=str(path)), seed=0)


def test_weights_file_with_code_rejected(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": models.resnet18(weights=None).state_dict(), "extra": Path("x")}, path)
    with pytest.raises(ConfigError, match="pickled objects are rejected"):
        plugin.build("resnet18", settings_for("resnet18", weights=str(path)), seed=0)


def test_weights_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        plugin.build("resnet18", settings_for("resnet18", weights=str(tmp_path / "none.pth")), seed=0)


def test_input_size_below_minimum():
    with pytest.raises(ConfigError, match="at least 75"):
        plugin.build("inception_v3", settings_for("inception_v3", pretrained=False, input_size=32), seed=0)


def test_frozen_features_cached_and_reused(small_mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config("resnet18", small_mnist_dir, freeze=True, pretrained=False)

    first = plugin.zoo_train(model="resnet18", data=data, config=config, reporter=TrainingReporter(1, quiet=True))
    second = plugin.zoo_train(model="resnet18", data=data, config=config, reporter=TrainingReporter(1, quiet=True))

    assert first.trained.extra["features_cached"] is False
    assert second.trained.extra["features_cached"] is True
    entries = FeatureCache().entries()
    assert len(entries) == 1
    assert entries[0].meta["shapes"]["train"] == [500, 512]
    trainable = [n for n, p in first.trained.net.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]


def test_interrupted_extraction_leaves_no_entry(small_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config("resnet18", small_mnist_dir, freeze=True, pretrained=False)
    saves = []

    def save_then_interrupt(path, array):
        saves.append(path)
        if len(saves) == 2:
            raise KeyboardInterrupt
        np.lib.format.write_array(open(path, "wb"), array)

    monkeypatch.setattr(np, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        plugin.zoo_train(model="resnet18", data=data, config=config, reporter=TrainingReporter(1, quiet=True))

    cache_dir = tmp_path / "cache" / "features"
    assert FeatureCache().entries() == []
    assert list(cache_dir.iterdir()) == []


@pytest.mark.parametrize("freeze", [True, False])
def test_save_load_predict_identical(small_mnist_dir, tmp_path, monkeypatch, freeze):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config("shufflenet_v2_x0_5", small_mnist_dir, freeze=freeze, pretrained=False)
    result = plugin.zoo_train(model="shufflenet_v2_x0_5", data=data, config=config,
                              reporter=TrainingReporter(1, quiet=True))
    folder = tmp_path / "saved"
    folder.mkdir()
    plugin.zoo_save(trained=result.trained, directory=str(folder))
    loaded = plugin.zoo_load(model="shufflenet_v2_x0_5", directory=str(folder), settings=config.settings, device="cpu")

    before = plugin.zoo_predict(trained=result.trained, images=data.test.images[:32])
    after = plugin.zoo_predict(trained=loaded, images=data.test.images[:32])

    assert before.shape == (32, 10)
    np.testing.assert_allclose(after, before, atol=1e-6)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-9)


def test_fine_tune_backbone_lr_groups(small_mnist_dir):
    config = _config("resnet18", small_mnist_dir, pretrained=False, backbone_lr=1e-4)
    classifier, heads, _ = plugin.build("resnet18", config.settings, seed=0)
    optimizer, _ = plugin._optimizer(classifier, config, set(heads), steps=10)
    lrs = sorted(group["max_lr"] for group in optimizer.param_groups)
    assert lrs == [1e-4, 1e-3]
    assert len(optimizer.param_groups[0]["params"]) == 2  # fc.weight and fc.bias


def _weights_after_steps(make_optimizer, start: list[torch.Tensor], gradients: list[list[torch.Tensor]]) -> torch.Tensor:
    params = [torch.nn.Parameter(tensor.clone()) for tensor in start]
    optimizer = make_optimizer(params)
    for step in gradients:
        for param, gradient in zip(params, step):
            param.grad = gradient.clone()
        optimizer.step()
    return torch.cat([param.detach().flatten() for param in params])


def test_fused_adamw_matches_loop():
    torch.manual_seed(0)
    start = [torch.randn(300, 40), torch.randn(40)]
    gradients = [[torch.randn_like(tensor) for tensor in start] for _ in range(20)]

    fused = _weights_after_steps(lambda params: adamw(params, 1e-3, 0.05, "cpu"), start, gradients)
    loop = _weights_after_steps(
        lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05, foreach=False), start, gradients
    )

    torch.testing.assert_close(fused, loop, rtol=0, atol=1e-6)
    assert (fused - torch.cat([tensor.flatten() for tensor in start])).abs().max() > 1e-3


def test_backbone_optimizer_is_fused_on_cpu(small_mnist_dir):
    config = _config("resnet18", small_mnist_dir, pretrained=False)
    classifier, heads, _ = plugin.build("resnet18", config.settings, seed=0)
    optimizer, _ = plugin._optimizer(classifier, config, set(heads), steps=10)
    assert optimizer.defaults["fused"] is True


def test_cache_command_lists_and_clears(small_mnist_dir, tmp_path, monkeypatch, capsys):
    from zoo_core.cli import main

    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config("squeezenet1_1", small_mnist_dir, freeze=True, pretrained=False)
    plugin.zoo_train(model="squeezenet1_1", data=data, config=config, reporter=TrainingReporter(1, quiet=True))
    capsys.readouterr()

    assert main(["cache"]) == 0
    listing = capsys.readouterr().out
    assert "torchvision/squeezenet1_1" in listing
    assert "500x512" in listing

    assert main(["cache", "clear"]) == 0
    assert "Removed 1 cached feature sets" in capsys.readouterr().out
    assert FeatureCache().entries() == []


# -- input adapter and pooling -----------------------------------------------------


def test_adapter_inverts_before_normalizing():
    images = torch.rand(2, 1, 28, 28)
    adapter = InputAdapter(28, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), invert=True)

    torch.testing.assert_close(adapter(images), ((1 - images) - 0.5).div(0.5).expand(-1, 3, -1, -1))


def test_pool_over_grid_replaces_only_the_final_pool():
    network = models.efficientnet_b0(num_classes=10)
    squeeze_pools = [name for name, module in network.named_modules() if name.startswith("features.") and name.endswith(".avgpool")]

    replaced = pool_over_grid(network, 2)
    features = network.features(torch.zeros(1, 3, 64, 64))

    assert replaced == "avgpool"
    assert network.avgpool.output_size == 2
    assert squeeze_pools and all(network.get_submodule(name).output_size == 1 for name in squeeze_pools)
    assert network.avgpool(features).flatten(1).shape == (1, 4 * features.shape[1])


@pytest.mark.parametrize("damage", ["cut_weights", "bad_json", "no_weights"])
def test_damaged_saved_model_names_file(small_mnist_dir, tmp_path, damage):
    settings = _config("shufflenet_v2_x0_5", small_mnist_dir, pretrained=False).settings
    classifier, _, weights_id = plugin.build("shufflenet_v2_x0_5", settings, 0)
    trained = plugin._trained("shufflenet_v2_x0_5", classifier, settings, weights_id, feature_dim=None)
    plugin.zoo_save(trained=trained, directory=str(tmp_path))
    weights, meta = tmp_path / "model.pt", tmp_path / "backbone.json"
    if damage == "cut_weights":
        weights.write_bytes(weights.read_bytes()[:5000])
    elif damage == "bad_json":
        meta.write_text("{\"input_size\": ", encoding="utf-8")
    else:
        weights.unlink()
    damaged = meta if damage == "bad_json" else weights

    with pytest.raises(DataError, match=f"cannot load the saved model {re.escape(str(damaged))} .*train the model again"):
        plugin.zoo_load(model="shufflenet_v2_x0_5", directory=str(tmp_path), settings=settings, device="cpu")


def test_batch_norm_momentum_raised_for_short_epochs():
    mnasnet, mobilenet = models.mnasnet0_5(), models.mobilenet_v3_small()

    changed = follow_data_with_batch_norm(mnasnet, steps_per_epoch=391)
    unchanged = follow_data_with_batch_norm(mobilenet, steps_per_epoch=391)
    momenta = {module.momentum for module in mnasnet.modules() if isinstance(module, torch.nn.BatchNorm2d)}

    assert changed == 52
    assert unchanged == 0
    assert len(momenta) == 1
    assert (1 - momenta.pop()) ** 391 == pytest.approx(0.02)
    assert follow_data_with_batch_norm(mobilenet, steps_per_epoch=32) == 34
