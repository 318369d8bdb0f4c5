"""How a pose network runs: torch, ONNX Runtime, torch.compile, TensorRT, batching, on-device ops, ONNX export."""
