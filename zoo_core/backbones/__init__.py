"""Shared machinery for plugins that wrap a library of ImageNet backbones."""

from zoo_core.backbones.plugin import BackboneClassifier, BackbonePlugin, BackboneSource, WeightsInfo

__all__ = ["BackboneClassifier", "BackbonePlugin", "BackboneSource", "WeightsInfo"]
