"""Quantization engines other than onnxruntime's, each behind the quantize stage's small boundary."""
