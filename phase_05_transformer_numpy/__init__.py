"""Phase 5: the full Transformer in NumPy: GPT and the encoder-decoder, trained on a CPU."""
