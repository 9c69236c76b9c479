"""Phase 2: sequence models in NumPy: RNN, LSTM, GRU, truncated BPTT, a char LM and seq2seq."""
