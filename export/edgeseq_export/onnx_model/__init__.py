"""Writing and checking ONNX: the step graph, its metadata, verification against PyTorch and ONNX Runtime, inspection."""
