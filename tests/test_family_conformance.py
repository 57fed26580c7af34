"""The conformance kit on one small model of each torchvision and timm family, with random weights.

The models come from ``python benchmarks/conformance_sweep.py
--smallest-per-family``: for each of the 111 families that have a model up to 100
million parameters, the model with the smallest default input size and then
the fewest parameters.

Each test runs the kit with one epoch of 16-image batches: 63 steps on the
kit's 1,000 training images. That is about as many steps as the kit's default
of two epochs of 32-image batches, with half the images, and it took 2.3 times
less time: 1,250 s in all for 95 families, against 2,980 s. Where a model
fails only the accuracy or loss check, check_with_retries checks it again with
twice the epochs, and then at learning rate 3e-4.

- FAMILY_MODELS, 104 families, run in every test run, the longest first so
  that no worker starts a long test last. The seconds after each model are
  its deciding kit run on one thread, with another model on the second core.
- SLOW_FAMILY_MODELS, 7 families, run only with ZOO_ALL_FAMILIES=1. Their
  smallest models take 215 s or more. samvit pads its 2x2 patch grid to a
  14x14 attention window, and efficientformer_l1, sam2_hiera_tiny and
  maxvit_t take no input below 224 pixels. With 107 families in every run,
  the test suite took 1,517 s on 2 cores, too close to a CI limit of 1,800 s.
- START_OPTIONS gives the models that fail the first run their options from
  the start, so that each test makes only the run that decides it.

Results this close to chance differ between CPUs: squeezenet1_1 passed after
64 steps of 32 images in one run and stayed at 0.110 on an AVX2 EPYC, while
convit_tiny and lcnet_035 passed on that EPYC and failed the loss check on an
AVX-512 Xeon. The retries cover such differences.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

from zoo_core.conformance import check_plugin, check_with_retries, format_results
from zoo_core.plugins import PluginHost

pytestmark = pytest.mark.slow

EPOCHS = 1
BATCH_SIZE = 16

FAMILY_MODELS = [
    "timm/nasnetalarge",  # nasnet: 84.76M parameters, 32 pixels, 123 s
    "timm/lambda_resnet26t",  # byoanet: 8.93M parameters, 128 pixels, 121 s
    "timm/beit_base_patch16_224",  # beit: 85.67M parameters, 32 pixels, 83 s
    "torchvision/vit_b_16",  # vision_transformer: 85.66M parameters, 32 pixels, 80 s
    "timm/inception_resnet_v2",  # inception_resnet_v2: 54.32M parameters, 75 pixels, 75 s
    "timm/tiny_vit_5m_224",  # tiny_vit: 5.07M parameters, 32 pixels, 65 s
    "timm/naflexvit_base_patch16_parfac_gap",  # naflexvit: 85.70M parameters, 32 pixels, 64 s
    "torchvision/swin_t",  # swin_transformer: 27.53M parameters, 32 pixels, 61 s
    "timm/inception_v4",  # inception_v4: 41.16M parameters, 75 pixels, 60 s
    "torchvision/inception_v3",  # inception: 21.81M parameters, 96 pixels, 47 s
    "timm/qwen3_vit_88m",  # qwen3_vit: 87.42M parameters, 32 pixels, 46 s
    "timm/crossvit_tiny_240",  # crossvit: 6.67M parameters, 120 pixels, 42 s
    "timm/hiera_tiny_224",  # hiera: 26.85M parameters, 32 pixels, 40 s
    "timm/davit_tiny",  # davit: 27.60M parameters, 32 pixels, 38 s
    "timm/focalnet_tiny_srf",  # focalnet: 27.67M parameters, 32 pixels, 37 s
    "timm/rdnet_tiny",  # rdnet: 22.83M parameters, 32 pixels, 36 s
    "timm/inception_v3",  # inception_v3: 21.81M parameters, 75 pixels, 35 s
    "timm/nextvit_small",  # nextvit: 30.75M parameters, 32 pixels, 34 s
    "torchvision/alexnet",  # alexnet: 57.04M parameters, 64 pixels, 34 s
    "timm/twins_svt_small",  # twins: 23.55M parameters, 32 pixels, 33 s
    "timm/tresnet_m",  # tresnet: 29.36M parameters, 32 pixels, 32 s
    "timm/xception41p",  # xception_aligned: 24.88M parameters, 32 pixels, 32 s
    "timm/res2next50",  # res2net: 22.64M parameters, 32 pixels, 31 s
    "timm/legacy_xception",  # xception: 20.83M parameters, 32 pixels, 29 s
    "timm/coat_tiny",  # coat: 5.35M parameters, 32 pixels, 24 s
    "timm/sequencer2d_s",  # sequencer: 27.27M parameters, 32 pixels, 24 s
    "torchvision/mnasnet0_5",  # mnasnet: 0.95M parameters, 32 pixels, 23 s
    "timm/tnt_s_legacy_patch16_224",  # tnt: 23.30M parameters, 32 pixels, 22 s
    "timm/selecsls42",  # selecsls: 29.09M parameters, 32 pixels, 21 s
    "timm/volo_d1_224",  # volo: 25.80M parameters, 32 pixels, 21 s
    "torchvision/efficientnet_b0",  # efficientnet: 4.02M parameters, 32 pixels, 21 s
    "timm/swin_s3_tiny_224",  # swin_transformer: 27.51M parameters, 32 pixels, 20 s
    "torchvision/convnext_tiny",  # convnext: 27.83M parameters, 32 pixels, 20 s
    "timm/mvitv2_tiny",  # mvitv2: 23.34M parameters, 32 pixels, 19 s
    "timm/vitamin_small_224",  # vitamin: 21.81M parameters, 32 pixels, 19 s
    "timm/hardcorenas_b",  # hardcorenas: 3.91M parameters, 32 pixels, 18 s
    "timm/swinv2_tiny_window16_256",  # swin_transformer_v2: 27.59M parameters, 32 pixels, 18 s
    "timm/csatv2",  # csatv2: 10.72M parameters, 64 pixels, 17 s
    "timm/efficientvim_m1",  # efficientvim: 5.73M parameters, 32 pixels, 17 s
    "timm/densenet121",  # densenet: 6.96M parameters, 32 pixels, 16 s
    "timm/nest_tiny",  # nest: 16.16M parameters, 32 pixels, 16 s
    "timm/swinv2_cr_tiny_224",  # swin_transformer_v2_cr: 27.57M parameters, 32 pixels, 16 s
    "timm/hrnet_w18_small",  # hrnet: 11.16M parameters, 32 pixels, 15 s
    "torchvision/densenet121",  # densenet: 6.96M parameters, 32 pixels, 15 s
    "timm/resnest14d",  # resnest: 8.58M parameters, 32 pixels, 14 s
    "timm/dpn48b",  # dpn: 8.30M parameters, 32 pixels, 13 s
    "timm/fastvit_t8",  # fastvit: 3.26M parameters, 32 pixels, 13 s
    "timm/poolformerv2_s12",  # metaformer: 11.38M parameters, 32 pixels, 13 s
    "timm/cait_xxs24_224",  # cait: 11.73M parameters, 32 pixels, 12 s
    "timm/gcvit_xxtiny",  # gcvit: 11.45M parameters, 32 pixels, 12 s
    "timm/lcnetv2_small",  # lcnetv2: 2.86M parameters, 32 pixels, 12 s
    "timm/xcit_nano_12_p8_224",  # xcit: 2.92M parameters, 32 pixels, 12 s
    "timm/lowformer_b0",  # lowformer: 12.52M parameters, 32 pixels, 11 s
    "timm/repvit_m1",  # repvit: 4.72M parameters, 32 pixels, 11 s
    "torchvision/mobilenet_v2",  # mobilenetv2: 2.24M parameters, 32 pixels, 11 s
    "timm/gmlp_ti16_224",  # mlp_mixer: 4.58M parameters, 32 pixels, 10 s
    "timm/rexnet_100",  # rexnet: 3.53M parameters, 32 pixels, 10 s
    "timm/skresnet18",  # sknet: 11.45M parameters, 32 pixels, 10 s
    "timm/visformer_tiny",  # visformer: 9.81M parameters, 32 pixels, 10 s
    "torchvision/googlenet",  # googlenet: 9.96M parameters, 32 pixels, 10 s
    "timm/convit_tiny",  # convit: 5.48M parameters, 32 pixels, 9 s
    "timm/efficientformerv2_s0",  # efficientformer_v2: 3.25M parameters, 32 pixels, 9 s
    "timm/iformer_t",  # iformer: 2.63M parameters, 32 pixels, 9 s
    "timm/legacy_seresnet18",  # senet: 11.27M parameters, 32 pixels, 9 s
    "timm/hgnetv2_b0",  # hgnet: 3.97M parameters, 32 pixels, 8 s
    "timm/resnetv2_18",  # resnetv2: 11.18M parameters, 32 pixels, 8 s
    "timm/shvit_s1",  # shvit: 6.01M parameters, 32 pixels, 8 s
    "torchvision/regnet_y_400mf",  # regnet: 3.91M parameters, 32 pixels, 8 s
    "torchvision/resnet18",  # resnet: 11.18M parameters, 32 pixels, 8 s
    "timm/efficientvit_m0",  # efficientvit_msra: 2.16M parameters, 32 pixels, 7 s
    "timm/swiftformer_xs",  # swiftformer: 3.04M parameters, 32 pixels, 7 s
    "torchvision/mobilenet_v3_small",  # mobilenetv3: 1.53M parameters, 32 pixels, 7 s
    "timm/ghostnet_050",  # ghostnet: 1.32M parameters, 32 pixels, 6 s
    "timm/inception_next_atto",  # inception_next: 3.21M parameters, 32 pixels, 6 s
    "timm/pvt_v2_b0",  # pvt_v2: 3.41M parameters, 32 pixels, 6 s
    "timm/repghostnet_050",  # repghost: 1.05M parameters, 32 pixels, 6 s
    "timm/vit_pe_spatial_tiny_patch16_512",  # eva: 5.49M parameters, 32 pixels, 6 s
    "timm/deit_tiny_patch16_224",  # deit: 5.49M parameters, 32 pixels, 5 s
    "timm/dla46x_c",  # dla: 0.81M parameters, 32 pixels, 5 s
    "timm/efficientvit_b0",  # efficientvit_mit: 2.14M parameters, 32 pixels, 5 s
    "timm/vit_tiny_r_s16_p8_224",  # vision_transformer_hybrid: 6.14M parameters, 32 pixels, 5 s
    "timm/cpubone_nano",  # cpubone: 4.93M parameters, 32 pixels, 4 s
    "timm/cs3darknet_focus_s",  # cspnet: 2.77M parameters, 32 pixels, 4 s
    "timm/cspnext_tiny",  # cspnext: 2.35M parameters, 32 pixels, 4 s
    "timm/edgenext_xx_small",  # edgenext: 1.16M parameters, 32 pixels, 4 s
    "timm/ese_vovnet19b_slim_dw",  # vovnet: 1.39M parameters, 32 pixels, 4 s
    "timm/fasternet_t0",  # fasternet: 2.64M parameters, 32 pixels, 4 s
    "timm/lcnet_035",  # mobilenetv3: 0.38M parameters, 32 pixels, 4 s
    "timm/levit_128s",  # levit: 7.01M parameters, 32 pixels, 4 s
    "timm/mobilevit_xxs",  # mobilevit: 0.95M parameters, 32 pixels, 4 s
    "timm/pit_ti_224",  # pit: 4.55M parameters, 32 pixels, 4 s
    "timm/regnetx_002",  # regnet: 2.32M parameters, 32 pixels, 4 s
    "timm/starnet_s050",  # starnet: 0.42M parameters, 32 pixels, 3 s
    "timm/test_nfnet",  # nfnet: 0.19M parameters, 32 pixels, 3 s
    "torchvision/squeezenet1_1",  # squeezenet: 0.73M parameters, 32 pixels, 3 s
    "timm/test_coatnet",  # maxxvit: 0.45M parameters, 32 pixels, 2 s
    "timm/test_convnext",  # convnext: 0.21M parameters, 32 pixels, 2 s
    "timm/test_mambaout",  # mambaout: 0.19M parameters, 32 pixels, 2 s
    "timm/test_resnet",  # resnet: 0.37M parameters, 32 pixels, 2 s
    "timm/test_vit_relpos",  # vision_transformer_relpos: 0.75M parameters, 32 pixels, 2 s
    "torchvision/shufflenet_v2_x0_5",  # shufflenetv2: 0.35M parameters, 32 pixels, 2 s
    "timm/test_byobnet",  # byobnet: 0.20M parameters, 32 pixels, 1 s
    "timm/test_efficientnet",  # efficientnet: 0.10M parameters, 32 pixels, 1 s
    "timm/test_vit",  # vision_transformer: 0.30M parameters, 32 pixels, 1 s
]

SLOW_FAMILY_MODELS = [
    "timm/convmixer_768_32",  # convmixer: 20.35M parameters, 32 pixels, 231 s
    "timm/efficientformer_l1",  # efficientformer: 11.40M parameters, 224 pixels, 288 s
    "timm/mobilenetv5_base",  # mobilenetv5: 80.62M parameters, 32 pixels, 572 s with retries
    "timm/pnasnet5large",  # pnasnet: 81.78M parameters, 32 pixels, 215 s
    "timm/sam2_hiera_tiny",  # hieradet_sam2: 26.86M parameters, 224 pixels, about 470 s estimated from step times
    "timm/samvit_base_patch16_224",  # vision_transformer_sam: 85.68M parameters, 32 pixels, 468 s
    "torchvision/maxvit_t",  # maxvit: 30.41M parameters, 224 pixels, about 1,020 s estimated from step times
]


@dataclass(frozen=True)
class Start:
    """Kit options that a model starts with instead of one epoch of 16-image batches."""

    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    settings: tuple[str, ...] = ()


# The failed checks after one epoch of 16-image batches on an AVX-512 Xeon,
# and the options that pass. timm's EfficientNet family and torchvision's
# MNASNet initialize their 10-class heads with a scale meant for 1,000
# classes, so their first losses are high (3.8 for hardcorenas_b against 2.3
# for a guess).
START_OPTIONS = {
    # accuracy 0.099 and loss not falling; passes with 2 epochs
    "torchvision/alexnet": Start(epochs=2),
    # accuracy 0.099 and loss not falling; passes with 2 epochs
    "timm/convit_tiny": Start(epochs=2),
    # accuracy 0.124; passes with 2 epochs
    "timm/efficientvim_m1": Start(epochs=2),
    # accuracy 0.099; passes with 2 epochs
    "torchvision/efficientnet_b0": Start(epochs=2),
    # loss not falling (2.30 to 2.31); passes with 2 epochs
    "timm/gmlp_ti16_224": Start(epochs=2),
    # accuracy 0.114 and loss not falling; passes with 2 epochs
    "timm/lcnet_035": Start(epochs=2),
    # accuracy 0.117; passes with 2 epochs
    "torchvision/mobilenet_v2": Start(epochs=2),
    # accuracy 0.099; passes with 2 epochs
    "torchvision/mobilenet_v3_small": Start(epochs=2),
    # accuracy 0.141 with 1 epoch and 0.146 with 2 at 16 images, 0.147 needed; passes with 2 epochs of 32 images
    "timm/pnasnet5large": Start(epochs=2, batch_size=32),
    # accuracy 0.096, and 0.118 with 2 epochs; passes with 2 epochs at 3e-4
    "timm/beit_base_patch16_224": Start(epochs=2, settings=("lr=3e-4",)),
    # loss rising (3.79 to 5.82), also with 2 epochs; passes with 2 epochs at 3e-4
    "timm/hardcorenas_b": Start(epochs=2, settings=("lr=3e-4",)),
    # accuracy 0.126, and loss not falling with 2 epochs; passes with 2 epochs at 3e-4
    "timm/lcnetv2_small": Start(epochs=2, settings=("lr=3e-4",)),
    # accuracy 0.099, and 0.085 with 2 epochs; passes with 2 epochs at 3e-4
    "torchvision/squeezenet1_1": Start(epochs=2, settings=("lr=3e-4",)),
    # accuracy 0.094, and 0.110 with 2 epochs; passes with 2 epochs at 3e-4
    "torchvision/vit_b_16": Start(epochs=2, settings=("lr=3e-4",)),
    # accuracy 0.141, 0.146 with 2 epochs and 0.119 at 3e-4; passes with 4 epochs of 32 images
    "timm/convmixer_768_32": Start(epochs=4, batch_size=32),
    # accuracy 0.094, 0.110 with 2 epochs and 0.126 at 3e-4; passes with 4 epochs of 32 images at 3e-4
    "timm/hiera_tiny_224": Start(epochs=4, batch_size=32, settings=("lr=3e-4",)),
    # accuracy 0.094, 0.092 with 2 epochs and 0.127 at 3e-4; passes with 6 epochs of 32 images
    "torchvision/mnasnet0_5": Start(epochs=6, batch_size=32),
}

ALL_FAMILIES = os.environ.get("ZOO_ALL_FAMILIES") == "1"
OPT_IN = pytest.mark.skipif(not ALL_FAMILIES, reason="set ZOO_ALL_FAMILIES=1 to check")


@pytest.mark.parametrize(
    "qualified",
    FAMILY_MODELS
    + [pytest.param(name, marks=OPT_IN) for name in SLOW_FAMILY_MODELS],
)
def test_family_model_conforms(kit_data, qualified):
    plugin, model = qualified.split("/")
    start = START_OPTIONS.get(qualified, Start())
    host = PluginHost()

    def run(epochs: int, settings: tuple[str, ...]) -> list:
        return check_plugin(host, plugin, [model], data=kit_data, epochs=epochs, batch_size=start.batch_size,
                            settings=["pretrained=false", *start.settings, *settings], threads=1)

    results = check_with_retries(run, start.epochs, 2 * start.epochs)[-1].results
    failed = sorted(f"{result.model}/{result.check}" for result in results if not result.passed)
    if failed:
        pytest.fail(f"failed {', '.join(failed)}:\n{format_results(results)}", pytrace=False)
