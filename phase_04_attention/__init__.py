"""Phase 4: attention in NumPy, from Bahdanau's alignment to multi-head causal self-attention,
and the ladder from a bigram model to a transformer block."""
