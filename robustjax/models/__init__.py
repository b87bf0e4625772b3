"""Classifiers converted exactly from published PyTorch weights, as pure functions of images.

``load(name, weights=None, head=None)``; ``names()`` lists the models; ``register(name, model, ...)``
adds one from outside the package (an NNX module or a plain JAX function). Each model module
(``cifar_resnet``, ``efficientnet_lite``, ``small_cnn``, ``resnet``, ``vit``) holds the Flax NNX
network, its preprocessing and the key map from its published state dict.
"""

from robustjax.models.classifier import Classifier
from robustjax.models.function import FunctionClassifier
from robustjax.models.zoo import HEADS, IMAGENETTE_CLASSES, load, names, register, usages

__all__ = ["Classifier", "FunctionClassifier", "HEADS", "IMAGENETTE_CLASSES", "load", "names", "register", "usages"]
