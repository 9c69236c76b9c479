"""Phase 3: tokenization and embeddings — how text becomes integers, and integers meaning.

A character tokenizer, byte-level BPE (a plain reference trainer, a numba trainer that gives
exactly the same merges, GPT-2's merges encoded exactly as tiktoken does), and word2vec.
"""
