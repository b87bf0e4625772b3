"""Classifiers converted exactly from published PyTorch weights, as pure functions of images.

``load(name, weights=None, head=None)``; ``names()`` lists the models; ``register(name, model, ...)``
adds one from outside the package (an NNX module or a plain JAX function). Each model module
(``cifar_resnet``, ``efficientnet_lite``, ``small_cnn``, ``resnet``, ``vit``) holds the Flax NNX
network, its preprocessing and the key map from its published state dict.
"""

from robustjax.models import ensemble, zoo
from robustjax.models.classifier import Classifier
from robustjax.models.function import FunctionClassifier
from robustjax.models.zoo import HEADS, IMAGENETTE_CLASSES, names, register, usages


def load(name: str, weights=None, head: str | None = None):
    """The classifier ``name`` (:func:`robustjax.models.zoo.load`), or for ``ensemble:CHAIN`` Das et
    al. 2017's voting ensemble of a vaccination folder (:func:`robustjax.models.ensemble.load_spec`)."""
    if ensemble.is_spec(name):
        return ensemble.load_spec(name, weights, head)
    return zoo.load(name, weights, head)


__all__ = ["Classifier", "FunctionClassifier", "HEADS", "IMAGENETTE_CLASSES", "load", "names", "register", "usages"]
