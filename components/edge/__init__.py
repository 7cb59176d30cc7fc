"""The on-device predictor: runs a pushed model with LiteRT, never importing TensorFlow."""

from emograph.components.edge.metadata import (
    ModelError,
    ModelMetadata,
    write_latest,
    write_metadata,
)
from emograph.components.edge.predictor import Prediction, Predictor, WindowPrediction

__all__ = [
    "ModelError",
    "ModelMetadata",
    "Prediction",
    "Predictor",
    "WindowPrediction",
    "write_latest",
    "write_metadata",
]
