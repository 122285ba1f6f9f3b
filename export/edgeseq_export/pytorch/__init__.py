"""Reading PyTorch: .pt files and modules into edgeseq's recurrent network, checkpoints of edgeseq's own models."""
