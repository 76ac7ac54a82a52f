"""Silero VAD (the ONNX file inside the `silero-vad` wheel, run with onnxruntime) as the speech-activity detector `silero`."""
