import argparse
from dataclasses import dataclass

import pytest

from phase_01_nn.config_options import add_config_options, config_from_args


@dataclass
class Toy:
    steps: int = 10
    lr: float = 1e-3
    name: str = "run"
    resume_from_best: bool = False


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_options(parser, Toy)
    return config_from_args(parser.parse_args(argv), Toy)


def test_defaults_and_typed_overrides():
    assert _parse([]) == Toy()
    assert _parse(["--steps", "5", "--lr", "0.5", "--name", "x"]) == Toy(5, 0.5, "x", False)
    assert _parse(["--resume-from-best"]).resume_from_best is True
    assert _parse(["--no-resume-from-best"]).resume_from_best is False


def test_a_mistyped_value_is_rejected(capsys):
    with pytest.raises(SystemExit):
        _parse(["--steps", "ten"])
    assert "invalid int value: 'ten'" in capsys.readouterr().err
