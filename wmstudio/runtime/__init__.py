"""Torch-free inference: ONNX Runtime + NumPy + Pillow. The one place that runs the model."""

from wmstudio.runtime.detector import Detection, Detector, Prediction

__all__ = ["Detection", "Detector", "Prediction"]
