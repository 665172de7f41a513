"""Inference: detections (a trained detector or a file, one interface), the pose stage, the BOP CSV."""
