"""Phase 4: attention — from Bahdanau's fix for the seq2seq bottleneck to scaled dot-product,
multi-head self-attention, and the ladder from a bigram model to a transformer block."""
