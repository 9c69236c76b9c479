"""Phase 6: the PyTorch parity layer, every hand-written NumPy op checked against autograd."""
