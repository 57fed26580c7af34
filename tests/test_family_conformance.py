"""The conformance kit on one small model of each torchvision and timm family, with random weights.

The models come from ``python benchmarks/conformance_sweep.py
--smallest-per-family``: for each family, the model with the smallest default
input size and then the fewest parameters, among those up to 100 million
parameters.

- FAMILY_MODELS run in every test run. Each passed every check here, in 2 to
  40 s on one thread.
- KNOWN_FAILURES fail a check after the kit's 64 training steps from random
  weights. They run with ZOO_ALL_FAMILIES=1 and are expected to fail.
- OTHER_FAMILY_MODELS run only with ZOO_ALL_FAMILIES=1. They include the
  families whose smallest model has tens of millions of parameters, where the
  kit takes minutes per model on a 2-core CPU (BEiT-base: 235 s).
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.slow

FAMILY_MODELS = [
    "timm/test_byobnet",  # byobnet: 0.20M parameters, 32 pixels
    "timm/cait_xxs24_224",  # cait: 11.73M parameters, 32 pixels
    "timm/coat_tiny",  # coat: 5.35M parameters, 32 pixels
    "timm/convit_tiny",  # convit: 5.48M parameters, 32 pixels
    "timm/test_convnext",  # convnext: 0.21M parameters, 32 pixels
    "timm/cpubone_nano",  # cpubone: 4.93M parameters, 32 pixels
    "timm/csatv2",  # csatv2: 10.72M parameters, 64 pixels
    "timm/cs3darknet_focus_s",  # cspnet: 2.77M parameters, 32 pixels
    "timm/cspnext_tiny",  # cspnext: 2.35M parameters, 32 pixels
    "timm/deit_tiny_patch16_224",  # deit: 5.49M parameters, 32 pixels
    "timm/densenet121",  # densenet: 6.96M parameters, 32 pixels
    "timm/dpn48b",  # dpn: 8.30M parameters, 32 pixels
    "timm/edgenext_xx_small",  # edgenext: 1.16M parameters, 32 pixels
    "timm/efficientformerv2_s0",  # efficientformer_v2: 3.25M parameters, 32 pixels
    "timm/test_efficientnet",  # efficientnet: 0.10M parameters, 32 pixels
    "timm/efficientvim_m1",  # efficientvim: 5.73M parameters, 32 pixels
    "timm/efficientvit_b0",  # efficientvit_mit: 2.14M parameters, 32 pixels
    "timm/efficientvit_m0",  # efficientvit_msra: 2.16M parameters, 32 pixels
    "timm/vit_pe_spatial_tiny_patch16_512",  # eva: 5.49M parameters, 32 pixels
    "timm/fasternet_t0",  # fasternet: 2.64M parameters, 32 pixels
    "timm/fastvit_t8",  # fastvit: 3.26M parameters, 32 pixels
    "timm/gcvit_xxtiny",  # gcvit: 11.45M parameters, 32 pixels
    "timm/ghostnet_050",  # ghostnet: 1.32M parameters, 32 pixels
    "timm/hgnetv2_b0",  # hgnet: 3.97M parameters, 32 pixels
    "timm/hrnet_w18_small",  # hrnet: 11.16M parameters, 32 pixels
    "timm/iformer_t",  # iformer: 2.63M parameters, 32 pixels
    "timm/inception_next_atto",  # inception_next: 3.21M parameters, 32 pixels
    "torchvision/googlenet",  # googlenet: 9.96M parameters, 32 pixels
    "torchvision/regnet_y_400mf",  # regnet: 3.91M parameters, 32 pixels
    "torchvision/resnet18",  # resnet: 11.18M parameters, 32 pixels
    "torchvision/shufflenet_v2_x0_5",  # shufflenetv2: 0.35M parameters, 32 pixels
    "torchvision/squeezenet1_1",  # squeezenet: 0.73M parameters, 32 pixels
]

# NOTE: these are findings of the kit, not yet explained: small mobile networks that do not beat
# chance after 64 steps at lr 0.001 from random weights, while their larger relatives do.
KNOWN_FAILURES = {
    "timm/dla46x_c": "test accuracy 0.144 after 64 steps from random weights",
    "timm/hardcorenas_b": "loss rose from 4.17 to 4.43 over 64 steps; evaluate's loss 4.54 differs from the cross-entropy 4.33 of its probabilities",
    "torchvision/mnasnet0_5": "test accuracy 0.126 after 64 steps from random weights",
    "torchvision/mobilenet_v2": "test accuracy 0.099 after 64 steps from random weights",
    "torchvision/mobilenet_v3_small": "test accuracy 0.110 after 64 steps from random weights",
}

OTHER_FAMILY_MODELS = [
    "timm/lcnetv2_small",  # lcnetv2: 2.86M parameters, 32 pixels
    "timm/levit_128s",  # levit: 7.01M parameters, 32 pixels
    "timm/lowformer_b0",  # lowformer: 12.52M parameters, 32 pixels
    "timm/test_mambaout",  # mambaout: 0.19M parameters, 32 pixels
    "timm/test_coatnet",  # maxxvit: 0.45M parameters, 32 pixels
    "timm/poolformerv2_s12",  # metaformer: 11.38M parameters, 32 pixels
    "timm/gmlp_ti16_224",  # mlp_mixer: 4.58M parameters, 32 pixels
    "timm/lcnet_035",  # mobilenetv3: 0.38M parameters, 32 pixels
    "timm/mobilevit_xxs",  # mobilevit: 0.95M parameters, 32 pixels
    "timm/test_nfnet",  # nfnet: 0.19M parameters, 32 pixels
    "timm/pit_ti_224",  # pit: 4.55M parameters, 32 pixels
    "timm/pvt_v2_b0",  # pvt_v2: 3.41M parameters, 32 pixels
    "timm/regnetx_002",  # regnet: 2.32M parameters, 32 pixels
    "timm/repghostnet_050",  # repghost: 1.05M parameters, 32 pixels
    "timm/repvit_m1",  # repvit: 4.72M parameters, 32 pixels
    "timm/resnest14d",  # resnest: 8.58M parameters, 32 pixels
    "timm/test_resnet",  # resnet: 0.37M parameters, 32 pixels
    "timm/resnetv2_18",  # resnetv2: 11.18M parameters, 32 pixels
    "timm/rexnet_100",  # rexnet: 3.53M parameters, 32 pixels
    "timm/legacy_seresnet18",  # senet: 11.27M parameters, 32 pixels
    "timm/shvit_s1",  # shvit: 6.01M parameters, 32 pixels
    "timm/skresnet18",  # sknet: 11.45M parameters, 32 pixels
    "timm/starnet_s050",  # starnet: 0.42M parameters, 32 pixels
    "timm/swiftformer_xs",  # swiftformer: 3.04M parameters, 32 pixels
    "timm/tiny_vit_5m_224",  # tiny_vit: 5.07M parameters, 32 pixels
    "timm/visformer_tiny",  # visformer: 9.81M parameters, 32 pixels
    "timm/test_vit",  # vision_transformer: 0.30M parameters, 32 pixels
    "timm/vit_tiny_r_s16_p8_224",  # vision_transformer_hybrid: 6.14M parameters, 32 pixels
    "timm/test_vit_relpos",  # vision_transformer_relpos: 0.75M parameters, 32 pixels
    "timm/ese_vovnet19b_slim_dw",  # vovnet: 1.39M parameters, 32 pixels
    "timm/xcit_nano_12_p8_224",  # xcit: 2.92M parameters, 32 pixels
    "torchvision/densenet121",  # densenet: 6.96M parameters, 32 pixels
    "torchvision/efficientnet_b0",  # efficientnet: 4.02M parameters, 32 pixels
    "timm/beit_base_patch16_224",  # beit: 85.67M parameters, 32 pixels
    "timm/lambda_resnet26t",  # byoanet: 8.93M parameters, 128 pixels
    "timm/convmixer_768_32",  # convmixer: 20.35M parameters, 32 pixels
    "timm/crossvit_tiny_240",  # crossvit: 6.67M parameters, 120 pixels
    "timm/davit_tiny",  # davit: 27.60M parameters, 32 pixels
    "timm/efficientformer_l1",  # efficientformer: 11.40M parameters, 224 pixels
    "timm/focalnet_tiny_srf",  # focalnet: 27.67M parameters, 32 pixels
    "timm/hiera_tiny_224",  # hiera: 26.85M parameters, 32 pixels
    "timm/sam2_hiera_tiny",  # hieradet_sam2: 26.86M parameters, 224 pixels
    "timm/inception_resnet_v2",  # inception_resnet_v2: 54.32M parameters, 75 pixels
    "timm/inception_v3",  # inception_v3: 21.81M parameters, 75 pixels
    "timm/inception_v4",  # inception_v4: 41.16M parameters, 75 pixels
    "timm/mobilenetv5_base",  # mobilenetv5: 80.62M parameters, 32 pixels
    "timm/mvitv2_tiny",  # mvitv2: 23.34M parameters, 32 pixels
    "timm/naflexvit_base_patch16_parfac_gap",  # naflexvit: 85.70M parameters, 32 pixels
    "timm/nasnetalarge",  # nasnet: 84.76M parameters, 32 pixels
    "timm/nest_tiny",  # nest: 16.16M parameters, 32 pixels
    "timm/nextvit_small",  # nextvit: 30.75M parameters, 32 pixels
    "timm/pnasnet5large",  # pnasnet: 81.78M parameters, 32 pixels
    "timm/qwen3_vit_88m",  # qwen3_vit: 87.42M parameters, 32 pixels
    "timm/rdnet_tiny",  # rdnet: 22.83M parameters, 32 pixels
    "timm/res2next50",  # res2net: 22.64M parameters, 32 pixels
    "timm/selecsls42",  # selecsls: 29.09M parameters, 32 pixels
    "timm/sequencer2d_s",  # sequencer: 27.27M parameters, 32 pixels
    "timm/swin_s3_tiny_224",  # swin_transformer: 27.51M parameters, 32 pixels
    "timm/swinv2_tiny_window16_256",  # swin_transformer_v2: 27.59M parameters, 32 pixels
    "timm/swinv2_cr_tiny_224",  # swin_transformer_v2_cr: 27.57M parameters, 32 pixels
    "timm/tnt_s_legacy_patch16_224",  # tnt: 23.30M parameters, 32 pixels
    "timm/tresnet_m",  # tresnet: 29.36M parameters, 32 pixels
    "timm/twins_svt_small",  # twins: 23.55M parameters, 32 pixels
    "timm/samvit_base_patch16_224",  # vision_transformer_sam: 85.68M parameters, 32 pixels
    "timm/vitamin_small_224",  # vitamin: 21.81M parameters, 32 pixels
    "timm/volo_d1_224",  # volo: 25.80M parameters, 32 pixels
    "timm/legacy_xception",  # xception: 20.83M parameters, 32 pixels
    "timm/xception41p",  # xception_aligned: 24.88M parameters, 32 pixels
    "torchvision/alexnet",  # alexnet: 57.04M parameters, 64 pixels
    "torchvision/convnext_tiny",  # convnext: 27.83M parameters, 32 pixels
    "torchvision/inception_v3",  # inception: 21.81M parameters, 96 pixels
    "torchvision/maxvit_t",  # maxvit: 30.41M parameters, 224 pixels
    "torchvision/swin_t",  # swin_transformer: 27.53M parameters, 32 pixels
    "torchvision/vit_b_16",  # vision_transformer: 85.66M parameters, 32 pixels
]

ALL_FAMILIES = os.environ.get("ZOO_ALL_FAMILIES") == "1"
OPT_IN = pytest.mark.skipif(not ALL_FAMILIES, reason="set ZOO_ALL_FAMILIES=1 to check")


@pytest.mark.parametrize(
    "qualified",
    FAMILY_MODELS
    + [pytest.param(name, marks=[OPT_IN, pytest.mark.xfail(reason=cause)]) for name, cause in KNOWN_FAILURES.items()]
    + [pytest.param(name, marks=OPT_IN) for name in OTHER_FAMILY_MODELS],
)
def test_family_model_conforms(zoo_conformance, kit_data, qualified):
    plugin, model = qualified.split("/")
    zoo_conformance(plugin, models=[model], data=kit_data, settings=["pretrained=false"], threads=1)
