"""The conformance kit on one small model of each torchvision and timm family, with random weights.

The models come from ``python benchmarks/conformance_sweep.py
--smallest-per-family``: for each of the 111 families that have a model up to 100
million parameters, the model with the smallest default input size and then
the fewest parameters.

- FAMILY_MODELS, 95 families, run in every test run. The seconds after each
  model are its time in a full test run on 2 cores: up to 107 s each.
- LARGE_FAMILY_MODELS, 16 families, run only with ZOO_ALL_FAMILIES=1. The
  seconds after each are the sweep's time for the kit on one thread, with
  another model on the second core. 11 passed in 136 to 564 s each and 5 were
  stopped after 600 s. Together they need about 1.6 hours of one core, which a
  30-minute test run on 2 cores cannot hold. vit_b_16 took 204 s in a full
  test run.
- SLOW_STARTERS stay at chance, or their loss has not yet fallen, after the
  kit's default 64 steps from random weights, and pass with more.
  The 10-class heads of torchvision MNASNet and timm's EfficientNet family are
  initialized with a scale meant for 1,000 classes, so their first losses are
  high (15.4 for mnasnet0_5, 4.2 for hardcorenas_b, against 2.3 for a guess).

Results this close to chance differ between CPUs: squeezenet1_1 passed after
64 steps in an earlier run and stays at 0.110 on an AVX2 EPYC, while
convit_tiny and lcnet_035 pass after 64 steps on that EPYC and fail the loss
check on an AVX-512 Xeon. So, as in the sweep, a model that fails only the accuracy or loss check
after 64 steps is checked again with 128, and then with 128 at learning rate
3e-4, at which models that collapse at 1e-3 learn. Any other failed check
fails the test at once.
"""

from __future__ import annotations

import os

import pytest

from zoo_core.conformance import check_plugin, format_results
from zoo_core.plugins import PluginHost

pytestmark = pytest.mark.slow

FAMILY_MODELS = [
    "timm/beit_base_patch16_224",  # beit: 85.67M parameters, 32 pixels, 83 s
    "timm/test_byobnet",  # byobnet: 0.20M parameters, 32 pixels, 3 s
    "timm/cait_xxs24_224",  # cait: 11.73M parameters, 32 pixels, 27 s
    "timm/coat_tiny",  # coat: 5.35M parameters, 32 pixels, 65 s
    "timm/convit_tiny",  # convit: 5.48M parameters, 32 pixels, 23 s (with 128 steps on the Xeon)
    "timm/test_convnext",  # convnext: 0.21M parameters, 32 pixels, 5 s
    "timm/cpubone_nano",  # cpubone: 4.93M parameters, 32 pixels, 8 s
    "timm/crossvit_tiny_240",  # crossvit: 6.67M parameters, 120 pixels, 70 s
    "timm/csatv2",  # csatv2: 10.72M parameters, 64 pixels, 40 s
    "timm/cs3darknet_focus_s",  # cspnet: 2.77M parameters, 32 pixels, 10 s
    "timm/cspnext_tiny",  # cspnext: 2.35M parameters, 32 pixels, 9 s
    "timm/davit_tiny",  # davit: 27.60M parameters, 32 pixels, 62 s
    "timm/deit_tiny_patch16_224",  # deit: 5.49M parameters, 32 pixels, 13 s
    "timm/densenet121",  # densenet: 6.96M parameters, 32 pixels, 38 s
    "timm/dla46x_c",  # dla: 0.81M parameters, 32 pixels, 24 s
    "timm/dpn48b",  # dpn: 8.30M parameters, 32 pixels, 29 s
    "timm/edgenext_xx_small",  # edgenext: 1.16M parameters, 32 pixels, 10 s
    "timm/efficientformerv2_s0",  # efficientformer_v2: 3.25M parameters, 32 pixels, 23 s
    "timm/test_efficientnet",  # efficientnet: 0.10M parameters, 32 pixels, 3 s
    "timm/efficientvim_m1",  # efficientvim: 5.73M parameters, 32 pixels, 21 s
    "timm/efficientvit_b0",  # efficientvit_mit: 2.14M parameters, 32 pixels, 11 s
    "timm/efficientvit_m0",  # efficientvit_msra: 2.16M parameters, 32 pixels, 13 s
    "timm/vit_pe_spatial_tiny_patch16_512",  # eva: 5.49M parameters, 32 pixels, 14 s
    "timm/fasternet_t0",  # fasternet: 2.64M parameters, 32 pixels, 9 s
    "timm/fastvit_t8",  # fastvit: 3.26M parameters, 32 pixels, 32 s
    "timm/focalnet_tiny_srf",  # focalnet: 27.67M parameters, 32 pixels, 72 s
    "timm/gcvit_xxtiny",  # gcvit: 11.45M parameters, 32 pixels, 29 s
    "timm/ghostnet_050",  # ghostnet: 1.32M parameters, 32 pixels, 13 s
    "timm/hardcorenas_b",  # hardcorenas: 3.91M parameters, 32 pixels, 40 s
    "timm/hgnetv2_b0",  # hgnet: 3.97M parameters, 32 pixels, 14 s
    "timm/hiera_tiny_224",  # hiera: 26.85M parameters, 32 pixels, 107 s (passes at learning rate 3e-4)
    "timm/hrnet_w18_small",  # hrnet: 11.16M parameters, 32 pixels, 33 s
    "timm/iformer_t",  # iformer: 2.63M parameters, 32 pixels, 24 s
    "timm/inception_next_atto",  # inception_next: 3.21M parameters, 32 pixels, 16 s
    "timm/inception_v3",  # inception_v3: 21.81M parameters, 75 pixels, 95 s
    "timm/lcnetv2_small",  # lcnetv2: 2.86M parameters, 32 pixels, 29 s
    "timm/levit_128s",  # levit: 7.01M parameters, 32 pixels, 8 s
    "timm/lowformer_b0",  # lowformer: 12.52M parameters, 32 pixels, 25 s
    "timm/test_mambaout",  # mambaout: 0.19M parameters, 32 pixels, 5 s
    "timm/test_coatnet",  # maxxvit: 0.45M parameters, 32 pixels, 6 s
    "timm/poolformerv2_s12",  # metaformer: 11.38M parameters, 32 pixels, 28 s
    "timm/gmlp_ti16_224",  # mlp_mixer: 4.58M parameters, 32 pixels, 14 s
    "timm/lcnet_035",  # mobilenetv3: 0.38M parameters, 32 pixels, 10 s (with 128 steps on the Xeon)
    "timm/mobilevit_xxs",  # mobilevit: 0.95M parameters, 32 pixels, 9 s
    "timm/mvitv2_tiny",  # mvitv2: 23.34M parameters, 32 pixels, 54 s
    "timm/nest_tiny",  # nest: 16.16M parameters, 32 pixels, 38 s
    "timm/nextvit_small",  # nextvit: 30.75M parameters, 32 pixels, 63 s
    "timm/test_nfnet",  # nfnet: 0.19M parameters, 32 pixels, 7 s
    "timm/pit_ti_224",  # pit: 4.55M parameters, 32 pixels, 8 s
    "timm/pvt_v2_b0",  # pvt_v2: 3.41M parameters, 32 pixels, 14 s
    "timm/qwen3_vit_88m",  # qwen3_vit: 87.42M parameters, 32 pixels, 70 s
    "timm/rdnet_tiny",  # rdnet: 22.83M parameters, 32 pixels, 79 s
    "timm/regnetx_002",  # regnet: 2.32M parameters, 32 pixels, 9 s
    "timm/repghostnet_050",  # repghost: 1.05M parameters, 32 pixels, 13 s
    "timm/repvit_m1",  # repvit: 4.72M parameters, 32 pixels, 26 s
    "timm/res2next50",  # res2net: 22.64M parameters, 32 pixels, 56 s
    "timm/resnest14d",  # resnest: 8.58M parameters, 32 pixels, 29 s
    "timm/test_resnet",  # resnet: 0.37M parameters, 32 pixels, 4 s
    "timm/resnetv2_18",  # resnetv2: 11.18M parameters, 32 pixels, 25 s
    "timm/rexnet_100",  # rexnet: 3.53M parameters, 32 pixels, 23 s
    "timm/selecsls42",  # selecsls: 29.09M parameters, 32 pixels, 76 s
    "timm/legacy_seresnet18",  # senet: 11.27M parameters, 32 pixels, 27 s
    "timm/sequencer2d_s",  # sequencer: 27.27M parameters, 32 pixels, 57 s
    "timm/shvit_s1",  # shvit: 6.01M parameters, 32 pixels, 16 s
    "timm/skresnet18",  # sknet: 11.45M parameters, 32 pixels, 28 s
    "timm/starnet_s050",  # starnet: 0.42M parameters, 32 pixels, 9 s
    "timm/swiftformer_xs",  # swiftformer: 3.04M parameters, 32 pixels, 16 s
    "timm/swin_s3_tiny_224",  # swin_transformer: 27.51M parameters, 32 pixels, 47 s
    "timm/swinv2_tiny_window16_256",  # swin_transformer_v2: 27.59M parameters, 32 pixels, 41 s
    "timm/swinv2_cr_tiny_224",  # swin_transformer_v2_cr: 27.57M parameters, 32 pixels, 36 s
    "timm/tnt_s_legacy_patch16_224",  # tnt: 23.30M parameters, 32 pixels, 51 s
    "timm/tresnet_m",  # tresnet: 29.36M parameters, 32 pixels, 67 s
    "timm/twins_svt_small",  # twins: 23.55M parameters, 32 pixels, 88 s
    "timm/visformer_tiny",  # visformer: 9.81M parameters, 32 pixels, 23 s
    "timm/test_vit",  # vision_transformer: 0.30M parameters, 32 pixels, 4 s
    "timm/vit_tiny_r_s16_p8_224",  # vision_transformer_hybrid: 6.14M parameters, 32 pixels, 12 s
    "timm/test_vit_relpos",  # vision_transformer_relpos: 0.75M parameters, 32 pixels, 5 s
    "timm/vitamin_small_224",  # vitamin: 21.81M parameters, 32 pixels, 52 s
    "timm/volo_d1_224",  # volo: 25.80M parameters, 32 pixels, 56 s
    "timm/ese_vovnet19b_slim_dw",  # vovnet: 1.39M parameters, 32 pixels, 9 s
    "timm/legacy_xception",  # xception: 20.83M parameters, 32 pixels, 66 s
    "timm/xception41p",  # xception_aligned: 24.88M parameters, 32 pixels, 78 s
    "timm/xcit_nano_12_p8_224",  # xcit: 2.92M parameters, 32 pixels, 28 s
    "torchvision/alexnet",  # alexnet: 57.04M parameters, 64 pixels, 47 s
    "torchvision/convnext_tiny",  # convnext: 27.83M parameters, 32 pixels, 53 s
    "torchvision/densenet121",  # densenet: 6.96M parameters, 32 pixels, 37 s
    "torchvision/efficientnet_b0",  # efficientnet: 4.02M parameters, 32 pixels, 59 s
    "torchvision/googlenet",  # googlenet: 9.96M parameters, 32 pixels, 24 s
    "torchvision/mnasnet0_5",  # mnasnet: 0.95M parameters, 32 pixels, 35 s
    "torchvision/mobilenet_v2",  # mobilenetv2: 2.24M parameters, 32 pixels, 29 s
    "torchvision/mobilenet_v3_small",  # mobilenetv3: 1.53M parameters, 32 pixels, 11 s
    "torchvision/regnet_y_400mf",  # regnet: 3.91M parameters, 32 pixels, 15 s
    "torchvision/resnet18",  # resnet: 11.18M parameters, 32 pixels, 25 s
    "torchvision/shufflenet_v2_x0_5",  # shufflenetv2: 0.35M parameters, 32 pixels, 6 s
    "torchvision/squeezenet1_1",  # squeezenet: 0.73M parameters, 32 pixels, 7 s
]

LARGE_FAMILY_MODELS = [
    "torchvision/vit_b_16",  # vision_transformer: 85.66M parameters, 32 pixels, 136 s
    "torchvision/inception_v3",  # inception: 21.81M parameters, 96 pixels, 145 s
    "torchvision/swin_t",  # swin_transformer: 27.53M parameters, 32 pixels, 180 s
    "timm/tiny_vit_5m_224",  # tiny_vit: 5.07M parameters, 32 pixels, 190 s
    "timm/naflexvit_base_patch16_parfac_gap",  # naflexvit: 85.70M parameters, 32 pixels, 202 s
    "timm/inception_resnet_v2",  # inception_resnet_v2: 54.32M parameters, 75 pixels, 215 s
    "timm/inception_v4",  # inception_v4: 41.16M parameters, 75 pixels, 216 s
    "timm/nasnetalarge",  # nasnet: 84.76M parameters, 32 pixels, 313 s
    "timm/pnasnet5large",  # pnasnet: 81.78M parameters, 32 pixels, 314 s
    "timm/lambda_resnet26t",  # byoanet: 8.93M parameters, 128 pixels, 398 s
    "timm/convmixer_768_32",  # convmixer: 20.35M parameters, 32 pixels, 564 s
    "timm/efficientformer_l1",  # efficientformer: 11.40M parameters, 224 pixels, stopped after 600 s
    "timm/mobilenetv5_base",  # mobilenetv5: 80.62M parameters, 32 pixels, stopped after 600 s
    "timm/sam2_hiera_tiny",  # hieradet_sam2: 26.86M parameters, 224 pixels, stopped after 600 s
    "timm/samvit_base_patch16_224",  # vision_transformer_sam: 85.68M parameters, 32 pixels, stopped after 600 s
    "torchvision/maxvit_t",  # maxvit: 30.41M parameters, 224 pixels, stopped after 600 s
]

# The first check that failed after the kit's default 64 steps, and the epochs
# that pass: 4 (128 steps) unless SLOW_START_EPOCHS sets another number.
SLOW_STARTERS = {
    "timm/dla46x_c": "accuracy: test accuracy 0.1340 on 1,000 images",
    "timm/hardcorenas_b": "loss_falls: training loss did not fall: mean loss of the first 5 batches 4.1677, of the last 5 4.4325",
    "timm/lcnetv2_small": "accuracy: test accuracy 0.1260 on 1,000 images",
    "timm/mvitv2_tiny": "accuracy: test accuracy 0.1100 on 1,000 images",
    "torchvision/efficientnet_b0": "accuracy: test accuracy 0.0850 on 1,000 images",
    "torchvision/mnasnet0_5": "accuracy: test accuracy 0.1260 on 1,000 images, and 0.1400 after 128 steps",
    "torchvision/mobilenet_v2": "accuracy: test accuracy 0.0990 on 1,000 images",
    "torchvision/squeezenet1_1": "accuracy: test accuracy 0.1100 on 1,000 images",
}
SLOW_START_EPOCHS = {"torchvision/mnasnet0_5": 6}

LEARNING_CHECKS = {"accuracy", "loss_falls"}

ALL_FAMILIES = os.environ.get("ZOO_ALL_FAMILIES") == "1"
OPT_IN = pytest.mark.skipif(not ALL_FAMILIES, reason="set ZOO_ALL_FAMILIES=1 to check")


@pytest.mark.parametrize(
    "qualified",
    FAMILY_MODELS
    + [pytest.param(name, marks=OPT_IN) for name in LARGE_FAMILY_MODELS],
)
def test_family_model_conforms(kit_data, qualified):
    plugin, model = qualified.split("/")
    epochs = SLOW_START_EPOCHS.get(qualified, 4) if qualified in SLOW_STARTERS else 2
    results = _check(plugin, model, kit_data, epochs)
    if _only_learning_failed(results) and epochs < 4:
        results = _check(plugin, model, kit_data, 4)
    if _only_learning_failed(results):
        results = _check(plugin, model, kit_data, 4, "lr=3e-4")
    failed = sorted(f"{result.model}/{result.check}" for result in results if not result.passed)
    if failed:
        pytest.fail(f"failed {', '.join(failed)}:\n{format_results(results)}", pytrace=False)


def _check(plugin: str, model: str, data, epochs: int, *settings: str) -> list:
    return check_plugin(PluginHost(), plugin, [model], data=data, epochs=epochs,
                        settings=["pretrained=false", *settings], threads=1)


def _only_learning_failed(results: list) -> bool:
    failed = {result.check for result in results if not result.passed}
    return bool(failed) and failed <= LEARNING_CHECKS
