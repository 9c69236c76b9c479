"""Command-line options from a dataclass config: one ``--field-name`` per field, typed by its
default, so every preset can be overridden from the shell and stays type-checked.
Every phase's ``__main__`` uses this."""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, fields
from pathlib import Path

from phase_01_nn.command_line import UserError


def add_config_options(parser: argparse.ArgumentParser, config_class) -> None:
    """``--name`` for each field of ``config_class``; booleans get ``--name`` / ``--no-name``."""
    for field in fields(config_class):
        flag = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=field.default, help=f"(default {field.default})")
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default,
                                help=f"(default {field.default})")


def config_from_args(args: argparse.Namespace, config_class):
    """The config built from the parsed options of ``add_config_options``."""
    return config_class(**{f.name: getattr(args, f.name) for f in fields(config_class)})


def preset_parser(argv: list[str] | None, *, prog: str, description: str, config_class,
                  presets: dict, default: str, run_root: str,
                  resume: bool = True) -> argparse.ArgumentParser:
    """A parser whose ``--preset NAME`` sets the defaults of every ``--field`` option: the preset
    is read from ``argv`` first, then the config's options are added with its values, then
    ``--out`` (default ``<run_root>/<preset>``, left None for the caller to fill) and, with
    ``resume``, ``--resume``. The caller may add more options, then parses ``argv``."""
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default=default, choices=sorted(presets))
    known, _ = first.parse_known_args(argv)
    parser = argparse.ArgumentParser(prog=prog, description=description, parents=[first])
    add_config_options(parser, config_class)
    parser.set_defaults(**asdict(presets[known.preset]))
    parser.add_argument("--out", type=Path, default=None,
                        help=f"run directory (default {run_root}/<preset>)")
    if resume:
        parser.add_argument("--resume", action="store_true",
                            help="continue from the checkpoint in the run directory")
    return parser


def option_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_config(config, *, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()
                 ) -> None:
    """The checks every config shares, with errors that name the option as it is typed: every
    float field finite (``--lr nan`` is caught here, not as a NaN loss later), the ``positive``
    fields > 0 and the ``non_negative`` ones >= 0."""
    for field in fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{option_name(field.name)} must be a finite number, got {value}")
    for name in positive:
        if not getattr(config, name) > 0:
            raise UserError(f"{option_name(name)} must be > 0, got {getattr(config, name)}")
    for name in non_negative:
        if not getattr(config, name) >= 0:
            raise UserError(f"{option_name(name)} must be >= 0, got {getattr(config, name)}")


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The options ``argv`` sets explicitly, by destination name (``{"lr": 0.1}``): the parser
    run again with every default suppressed, so an option left at its default is absent."""
    quiet = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and not isinstance(action, argparse._HelpAction):
            quiet._add_action(_without_default(action))
    known, _ = quiet.parse_known_args(argv)
    return vars(known)


def _without_default(action: argparse.Action) -> argparse.Action:
    copy = argparse.Action.__new__(type(action))
    copy.__dict__.update(action.__dict__, default=argparse.SUPPRESS, required=False)
    return copy


def refuse_changes_on_resume(given: dict, saved: dict, *, allowed: set[str],
                             checkpoint: str | Path) -> None:
    """A resumed run continues the saved config: an option given with ``--resume`` that differs
    from the checkpoint's value, and that the run cannot take up midway, is an error naming it,
    not a flag silently ignored."""
    changed = [f"{option_name(name)} {value!r} (the checkpoint has {saved[name]!r})"
               for name, value in sorted(given.items())
               if name in saved and name not in allowed and value != saved[name]]
    if changed:
        raise UserError(f"--resume continues the run saved in {checkpoint} with its own "
                        f"config; it cannot change {', '.join(changed)}. Drop those options, or "
                        f"start a new run in another --out directory"
                        + (f" (options a resume may change: "
                           f"{', '.join(option_name(a) for a in sorted(allowed))})"
                           if allowed else ""))


def config_from_dict(config_class, values: dict):
    """A config from a saved dict (a checkpoint's, a run's ``config.json``); unknown keys fail
    with their names rather than as a ``TypeError`` from the constructor."""
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} fields {unknown}; "
                         f"expected some of {sorted(known)}")
    return config_class(**values)
