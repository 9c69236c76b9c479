"""Phase 0: the math every later phase uses — gradient checking, stable softmax, cross-entropy."""
