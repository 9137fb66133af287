"""Reporting a run elsewhere: MLflow, TensorBoard, paper figures."""
