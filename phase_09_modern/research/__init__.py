"""The research track: controlled experiments built on the phases, one module each
(positional extrapolation, grokking, the spiking transformer, failure modes), and the runner
behind ``python -m phase_09_modern.experiment NAME``."""
