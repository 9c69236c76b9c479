"""Phase 7: GPT in PyTorch — the model, GPT-2 weight loading, a careful trainer, and controlled
experiments (Pre-LN vs Post-LN, gradient clipping)."""
