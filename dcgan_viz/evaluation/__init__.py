"""Evaluation helpers: small supervised nets that measure what a DCGAN learned.

* ``Segmenter`` labels room pixels (wall, floor, window, ...): window-pixel counts.
* ``AttributeClassifier`` reads face attributes (smile, glasses, yaw, ...): vector arithmetic.
* ``Classifier`` classifies Fashion-MNIST; its penultimate features give an offline
  Fréchet distance (``frechet_distance``), FID-like without Inception weights.

Train them with ``train_*`` (``training``), store them with ``save_evaluator`` /
``load_evaluator`` (``store``).
"""

from dcgan_viz.evaluation.attributes import AttributeClassifier, AttributeConfig, predict_attributes
from dcgan_viz.evaluation.classifier import Classifier, ClassifierConfig, extract_features, predict_labels
from dcgan_viz.evaluation.frechet import feature_stats, frechet_distance, frechet_distance_from_stats
from dcgan_viz.evaluation.segmenter import Segmenter, SegmenterConfig, predict_masks
from dcgan_viz.evaluation.store import load_evaluator, save_evaluator
from dcgan_viz.evaluation.training import (
    evaluate_attribute_classifier,
    evaluate_classifier,
    evaluate_segmenter,
    train_attribute_classifier,
    train_classifier,
    train_segmenter,
)

__all__ = [
    "AttributeClassifier",
    "AttributeConfig",
    "Classifier",
    "ClassifierConfig",
    "Segmenter",
    "SegmenterConfig",
    "evaluate_attribute_classifier",
    "evaluate_classifier",
    "evaluate_segmenter",
    "extract_features",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_from_stats",
    "load_evaluator",
    "predict_attributes",
    "predict_labels",
    "predict_masks",
    "save_evaluator",
    "train_attribute_classifier",
    "train_classifier",
    "train_segmenter",
]
