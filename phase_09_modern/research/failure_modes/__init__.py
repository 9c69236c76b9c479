"""Failure modes of a trained char-level GPT, measured on phase 7's model, one module a
measurement:

- ``repetition.py``: greedy decoding falls into loops that sampling escapes (Holtzman et al. 2020);
- ``calibration.py``: expected calibration error before and after temperature scaling
  (Guo et al. 2017);
- ``shift.py``: the loss on text of other kinds than the training text;
- ``confident_errors.py``: the predictions that put >= 0.9 on the wrong character;
- ``scoring.py``: how the text is read through the model (ids, logits, probabilities);
- ``experiment.py``: the runner, one model per seed, tables and plots.

Notes: ``phase_09_modern/notes/22_failure_modes.md``.
"""
