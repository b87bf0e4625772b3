"""Classifiers converted exactly from published PyTorch weights, as pure functions of images.

``load(name, weights=None, head=None)``; ``names()`` lists the models. Each model module
(``cifar_resnet``, ``efficientnet_lite``, ``small_cnn``, ``resnet``, ``vit``) holds the Flax NNX
network, its preprocessing and the key map from its published state dict.
"""

from robustjax.models.classifier import Classifier
from robustjax.models.zoo import HEADS, IMAGENETTE_CLASSES, load, names

__all__ = ["Classifier", "HEADS", "IMAGENETTE_CLASSES", "load", "names"]
