"""Phase 1: neural networks in NumPy, from Rosenblatt's perceptron to a character MLP model."""
