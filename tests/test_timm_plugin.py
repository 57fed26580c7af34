"""The timm plugin: discovery, names shared with torchvision, one model per family, weights, memory limits, frozen features."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from huggingface_hub import constants as hf_constants

from zoo_core.backbones.features import FeatureCache
from zoo_core.backbones.heads import building_empty_weights
from zoo_core.backbones.memory import MEMORY_LIMIT_ENV
from zoo_core.backbones.plugin import fast_inference, to_channels_last
from zoo_core.config import RunConfig
from zoo_core.data import load_mnist
from zoo_core.errors import ConfigError, ZooError
from zoo_core.plugins import PluginHost
from zoo_core.registry import Catalog
from zoo_core.reporting import TrainingReporter
from zoo_core.torch_training import classification_loss, count_parameters, split_output
from zoo_timm import plugin

# One small model per family; the ViT runs at 32 pixels, a 2x2 grid of 16-pixel patches.
FAMILY_MODELS = [
    "resnet18",
    "tf_efficientnet_lite0",
    "mobilenetv3_small_050",
    "vit_tiny_patch16_224",
    "convnext_atto",
    "deit_tiny_distilled_patch16_224",  # two heads, a tuple of logits in training mode
    "vit_small_r26_s32_224",  # hybrid: runs its CNN stem while it is built
    "crossvit_tiny_240",  # takes only some input sizes
]
HF_COMMIT = "0" * 40
TINY_MODEL = "test_resnet"  # timm's own 0.5M-parameter ResNet for unit tests


def settings_for(model: str, **changes) -> dict:
    settings = plugin.default_settings(model)
    settings.update(changes)
    return settings


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache folder, with the hub in offline mode."""
    folder = tmp_path / "huggingface" / "hub"
    folder.mkdir(parents=True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(folder))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return folder


def _config(model: str, data_dir: Path, **settings) -> RunConfig:
    return RunConfig(
        model=f"timm/{model}", epochs=1, batch_size=50, lr=1e-3, seed=0, device="cpu",
        data_dir=str(data_dir), quiet=True, settings=settings_for(model, **settings),
    )


# -- discovery and names -------------------------------------------------------


def test_plugin_found_through_entry_point():
    info = PluginHost().plugins["timm"]

    assert info.loaded, info.error
    assert info.entry_point == "zoo_timm:plugin"
    assert info.contract == "1.0"
    assert "resnet18" in info.models


def test_models_are_timm_classifiers():
    provided = {spec.name for spec in plugin.zoo_models()}
    architectures = set(timm.list_models())

    assert provided <= architectures
    assert len(provided) >= 1000
    assert "qwen3_vit_88m_enc" in architectures
    assert not any(name.endswith("_enc") for name in provided)


def test_zoo_list_shows_timm_models(zoo_cli, tmp_path):
    result = zoo_cli("list", cwd=tmp_path)
    rows = {line.split()[1]: line.split() for line in result.stdout.splitlines()[1:]}

    assert result.returncode == 0, result.stderr
    assert rows["timm/convnext_atto"][0] == "convnext_atto"
    assert rows["timm/resnet50"][0] == "timm/resnet50"
    assert rows["torchvision/resnet50"][0] == "resnet50"
    assert rows["timm/tf_efficientnet_lite0"][0] == "tf_efficientnet_lite0"
    assert "EfficientNet-Lite0" in " ".join(rows["timm/tf_efficientnet_lite0"])


@pytest.mark.parametrize(
    ("name", "qualified"),
    [
        ("resnet50", "torchvision/resnet50"),
        ("vgg16", "torchvision/vgg16"),
        ("efficientnet_b0", "torchvision/efficientnet_b0"),
        ("timm/resnet50", "timm/resnet50"),
        ("timm/vgg16", "timm/vgg16"),
        ("convnext_atto", "timm/convnext_atto"),
        ("tf_efficientnet_lite0", "timm/tf_efficientnet_lite0"),
    ],
)
def test_plain_names_prefer_torchvision(name, qualified):
    assert Catalog(PluginHost()).resolve(name).qualified == qualified


# -- building ------------------------------------------------------------------


@pytest.mark.parametrize("model", FAMILY_MODELS)
def test_family_forward_backward(model):
    torch.manual_seed(0)
    classifier, heads, _ = plugin.build(model, settings_for(model, pretrained=False), seed=0)
    images = torch.from_numpy(load_mnist().test.images[:2]).unsqueeze(1).float() / 255

    classifier.train()
    output = classifier(images)
    logits, _ = split_output(output)
    loss = classification_loss(output, torch.tensor([7, 2]))
    loss.backward()

    assert logits.shape == (2, 10)
    assert torch.isfinite(loss)
    assert heads, "no head parameters were found"
    head_grads = [p.grad for n, p in classifier.network.named_parameters() if n in heads]
    assert all(g is not None for g in head_grads)


@pytest.mark.parametrize(
    ("model", "default", "minimum"),
    [
        ("resnet18", 32, 32),
        ("vit_tiny_patch16_224", 32, 32),
        ("eva02_tiny_patch14_224", 42, 32),  # rounded up to a multiple of the 14-pixel patch
        ("inception_v3", 75, 75),
        ("crossvit_tiny_240", 120, 120),
        ("efficientformer_l1", 224, 224),
        ("halonet26t", 256, 256),  # min_input_size in timm's pretrained config
        ("gemma4_vit_167m", 96, 96),
    ],
)
def test_input_size_rules(model, default, minimum):
    assert plugin.source.default_input_size(model) == default
    assert plugin.source.min_input_size(model) == minimum


def test_input_size_below_minimum():
    with pytest.raises(ConfigError, match="at least 75"):
        plugin.build("inception_v3", settings_for("inception_v3", pretrained=False, input_size=32), seed=0)


def test_input_size_architecture_rejects():
    settings = settings_for("crossvit_tiny_240", pretrained=False, input_size=130)

    with pytest.raises(ConfigError) as error:
        plugin.build("crossvit_tiny_240", settings, seed=0)

    message = str(error.value)
    assert message.startswith("timm/crossvit_tiny_240 does not work with input_size 130")
    assert message.endswith("its default input_size 120 works")


def test_pretrained_layout_as_timm_builds_it():
    with_weights = plugin.source.build("fbnetc_100", 10, 32, pretrained=True)
    without_weights = plugin.source.build("fbnetc_100", 10, 32, pretrained=False)

    assert with_weights.bn1.eps == 1e-3  # TensorFlow's BatchNorm epsilon, which its weights were trained with
    assert without_weights.bn1.eps == 1e-5


def test_info_reports_weights_and_head():
    facts = plugin.zoo_info("resnet18", settings_for("resnet18"))

    assert facts["family"] == "resnet"
    assert facts["parameters"] == "11,181,642 with a 10-class head"
    assert facts["weights"] == "timm/resnet18.a1_in1k"
    assert facts["weights file"] == "model.safetensors from https://huggingface.co/timm/resnet18.a1_in1k"
    assert facts["head"] == "fc"


# -- pretrained weights ----------------------------------------------------------


def test_pretrained_offline_mode_error(hf_cache, no_network):
    with pytest.raises(ZooError) as error:
        plugin.build("resnet18", settings_for("resnet18"), seed=0)

    message = str(error.value)
    assert no_network == []
    assert "timm/resnet18.a1_in1k for resnet18 are not in the Hugging Face cache" in message
    assert "models--timm--resnet18.a1_in1k from a Hugging Face cache that has it" in message
    assert str(hf_cache) in message
    assert "--weights FILE" in message
    assert "--no-pretrained" in message
    assert "HF_HUB_OFFLINE" not in message


def test_pretrained_unreachable_hub_error(tmp_path, monkeypatch):
    lookups, waits = [], []

    def unreachable(*args, **kwargs):
        lookups.append(args)
        raise OSError("network is unreachable")

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    monkeypatch.setattr(socket.socket, "connect", unreachable)
    monkeypatch.setattr(time, "sleep", waits.append)  # the hub client's retries would wait 23 s per file

    with pytest.raises(ZooError) as error:
        plugin.build("resnet18", settings_for("resnet18"), seed=0)

    message = str(error.value)
    assert lookups, "the hub was not asked"
    assert "are not in the Hugging Face cache and the download failed" in message
    assert str(tmp_path / "hub") in message
    assert "HF_HUB_OFFLINE=1" in message


def test_pretrained_loads_from_hf_cache(hf_cache, no_network):
    from safetensors.torch import save_file

    reference = timm.create_model("resnet18")
    repository = hf_cache / "models--timm--resnet18.a1_in1k"
    (repository / "refs").mkdir(parents=True)
    (repository / "refs" / "main").write_text(HF_COMMIT)
    snapshot = repository / "snapshots" / HF_COMMIT
    snapshot.mkdir(parents=True)
    save_file(reference.state_dict(), str(snapshot / "model.safetensors"))

    classifier, _, weights_id = plugin.build("resnet18", settings_for("resnet18"), seed=0)

    assert no_network == []
    assert weights_id == "timm/resnet18.a1_in1k"
    assert torch.equal(classifier.network.conv1.weight, reference.conv1.weight)
    assert torch.equal(classifier.network.layer4[1].bn2.running_mean, reference.layer4[1].bn2.running_mean)
    assert classifier.network.fc.out_features == 10


def test_url_weights_offline_error(hub_dir, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ZooError) as error:
        plugin.build("legacy_seresnet18", settings_for("legacy_seresnet18"), seed=0)

    message = str(error.value)
    assert "are not in the torch hub cache" in message
    assert "Put the file seresnet18-4bb0ce65.pth from https://" in message
    assert str(hub_dir) in message
    assert "--no-pretrained" in message


def test_url_weights_load_from_hub_cache(hub_dir, no_network):
    reference = timm.create_model("legacy_seresnet18")
    torch.save(reference.state_dict(), hub_dir / "seresnet18-4bb0ce65.pth")

    classifier, _, weights_id = plugin.build("legacy_seresnet18", settings_for("legacy_seresnet18"), seed=0)

    assert no_network == []
    assert weights_id == "legacy_seresnet18.in1k"
    assert torch.equal(classifier.network.layer0.conv1.weight, reference.layer0.conv1.weight)
    assert classifier.network.last_linear.out_features == 10


def test_no_published_weights():
    with pytest.raises(ConfigError, match="no published pretrained weights"):
        plugin.build("test_vit4", settings_for("test_vit4"), seed=0)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_drops_imagenet_head(tmp_path, no_network, suffix):
    reference = timm.create_model("resnet18")
    path = tmp_path / f"backbone{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(reference.state_dict(), str(path))
    else:
        torch.save({"state_dict": reference.state_dict()}, path)

    classifier, _, weights_id = plugin.build("resnet18", settings_for("resnet18", weights=str(path)), seed=0)

    assert no_network == []
    assert weights_id.startswith("file:")
    assert torch.equal(classifier.network.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert classifier.network.fc.weight.shape == (10, 512)


def test_weights_file_vit_position_embedding_resized(tmp_path, no_network):
    reference = timm.create_model("vit_tiny_patch16_224")  # 14x14 patches and a class token
    path = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), path)

    settings = settings_for("vit_tiny_patch16_224", weights=str(path), input_size=32)
    classifier, _, _ = plugin.build("vit_tiny_patch16_224", settings, seed=0)
    network = classifier.network

    assert no_network == []
    assert network.pos_embed.shape == (1, 5, 192)  # 2x2 patches and the class token
    assert torch.equal(network.pos_embed[0, 0], reference.pos_embed[0, 0])
    assert torch.equal(network.patch_embed.proj.weight, reference.patch_embed.proj.weight)
    assert network.head.weight.shape == (10, 192)


def test_weights_file_wrong_architecture(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(timm.create_model("resnet50").state_dict(), path)

    with pytest.raises(ZooError, match="do not fit this architecture"):
        plugin.build("resnet18", settings_for("resnet18", weights=str(path)), seed=0)


# -- memory --------------------------------------------------------------------


def test_memory_limit_rejects_model(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1")
    meta_model = timm.create_model("vit_base_patch16_224", num_classes=10, img_size=32, device="meta")
    expected = f"{count_parameters(meta_model):,}"

    with pytest.raises(ConfigError) as error:
        plugin.build("vit_base_patch16_224", settings_for("vit_base_patch16_224", pretrained=False), seed=0)

    message = str(error.value)
    assert f"timm/vit_base_patch16_224 has {expected} parameters" in message
    assert "needs about 1.4 GB of memory to fine-tune" in message
    assert f"only 1.0 GB is allowed by ${MEMORY_LIMIT_ENV}" in message
    assert "--freeze" in message


def test_memory_limit_frozen_needs_less(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1")

    plugin.source.check_settings("vit_base_patch16_224", settings_for("vit_base_patch16_224", freeze=True))


def test_memory_rejects_huge_model_before_build(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "8")
    meta_model = timm.create_model("vit_giant_patch14_224", num_classes=10, img_size=42, device="meta")
    expected = f"{count_parameters(meta_model):,}"
    build, real_builds = plugin.source.build, []

    def record_build(model, num_classes, input_size, pretrained):
        if not building_empty_weights():
            real_builds.append(model)
        return build(model, num_classes, input_size, pretrained)

    monkeypatch.setattr(plugin.source, "build", record_build)
    with pytest.raises(ConfigError) as error:
        plugin.build("vit_giant_patch14_224", settings_for("vit_giant_patch14_224", pretrained=False), seed=0)

    assert real_builds == []
    assert f"has {expected} parameters and needs about 16.2 GB of memory to fine-tune" in str(error.value)


def test_memory_limit_invalid(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")

    with pytest.raises(ConfigError, match="must be a number of GB, got 'lots'"):
        plugin.source.check_settings("resnet18", settings_for("resnet18"))


# -- training, features, saving ------------------------------------------------


def test_frozen_features_cached(small_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config(TINY_MODEL, small_mnist_dir, freeze=True, pretrained=False)
    width = timm.create_model(TINY_MODEL).num_features

    first = plugin.zoo_train(model=TINY_MODEL, data=data, config=config, reporter=TrainingReporter(1, quiet=True))
    second = plugin.zoo_train(model=TINY_MODEL, data=data, config=config, reporter=TrainingReporter(1, quiet=True))

    assert first.trained.extra["features_cached"] is False
    assert second.trained.extra["features_cached"] is True
    entries = FeatureCache().entries()
    assert len(entries) == 1
    assert entries[0].meta["model"] == f"timm/{TINY_MODEL}"
    assert entries[0].meta["shapes"]["train"] == [500, width]
    trainable = [n for n, p in first.trained.net.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]


@pytest.mark.parametrize("freeze", [True, False])
def test_save_load_predict_identical(small_mnist_dir, tmp_path, monkeypatch, freeze):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config(TINY_MODEL, small_mnist_dir, freeze=freeze, pretrained=False)
    result = plugin.zoo_train(model=TINY_MODEL, data=data, config=config, reporter=TrainingReporter(1, quiet=True))
    folder = tmp_path / "saved"
    folder.mkdir()
    plugin.zoo_save(trained=result.trained, directory=str(folder))
    loaded = plugin.zoo_load(model=TINY_MODEL, directory=str(folder), settings=config.settings, device="cpu")

    before = plugin.zoo_predict(trained=result.trained, images=data.test.images[:32])
    after = plugin.zoo_predict(trained=loaded, images=data.test.images[:32])

    assert before.shape == (32, 10)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-9)


def test_head_grid_multiplies_feature_width(small_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    data = load_mnist(small_mnist_dir)
    config = _config(TINY_MODEL, small_mnist_dir, freeze=True, pretrained=False, head_grid=2)
    width = timm.create_model(TINY_MODEL).num_features

    result = plugin.zoo_train(model=TINY_MODEL, data=data, config=config, reporter=TrainingReporter(1, quiet=True))
    folder = tmp_path / "saved"
    folder.mkdir()
    plugin.zoo_save(trained=result.trained, directory=str(folder))
    loaded = plugin.zoo_load(model=TINY_MODEL, directory=str(folder), settings=config.settings, device="cpu")

    assert result.trained.net.head.in_features == 4 * width
    assert FeatureCache().entries()[0].meta["shapes"]["train"] == [500, 4 * width]
    np.testing.assert_allclose(
        plugin.zoo_predict(trained=loaded, images=data.test.images[:32]),
        plugin.zoo_predict(trained=result.trained, images=data.test.images[:32]),
        atol=1e-6,
    )


def test_head_grid_needs_a_pooling_module(small_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    model = "test_vit"
    config = _config(model, small_mnist_dir, freeze=True, pretrained=False, head_grid=2)

    with pytest.raises(ConfigError, match="timm/test_vit has no global average pooling module for head_grid 2"):
        plugin.zoo_train(model=model, data=load_mnist(small_mnist_dir), config=config,
                         reporter=TrainingReporter(1, quiet=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head_grid": 2}, "setting 'head_grid' of 2 applies only to a frozen backbone"),
        ({"head_grid": 0, "freeze": True}, "setting 'head_grid' must be from 1 to 8, got 0"),
    ],
)
def test_head_grid_invalid(changes, message):
    with pytest.raises(ConfigError, match=message):
        plugin.build(TINY_MODEL, settings_for(TINY_MODEL, pretrained=False, **changes), seed=0)


def test_fast_inference_keeps_predictions(small_mnist_dir):
    torch.manual_seed(0)
    classifier, _, _ = plugin.build("tf_efficientnet_lite0", settings_for("tf_efficientnet_lite0", pretrained=False), seed=0)
    images = torch.from_numpy(load_mnist(small_mnist_dir).test.images[:16]).unsqueeze(1).float() / 255
    classifier.eval()
    with torch.no_grad():
        plain = classifier(images)
        with fast_inference(classifier, "cpu"):
            assert classifier.channels_last
            assert classifier.network.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
            fast = classifier(images)

    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=1e-4)
    assert not classifier.channels_last
    assert classifier.network.conv_stem.weight.is_contiguous()


def test_five_dimensional_weights_keep_default_layout():
    classifier, _, _ = plugin.build("lambda_resnet26t", settings_for("lambda_resnet26t", pretrained=False), seed=0)

    assert not to_channels_last(classifier)
    assert all(parameter.is_contiguous() for parameter in classifier.parameters())
    with fast_inference(classifier, "cpu"):
        assert not classifier.channels_last
