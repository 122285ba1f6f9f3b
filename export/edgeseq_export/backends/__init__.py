"""What an exported model becomes: int8/fp16 quantization, C code and its runtime, benchmarks against other engines."""
