"""The one error boundary of every command line in the project, and the help text it shows.

A mistake a user can make (a bad value, a missing or unreadable file, a full disk, a corrupted
checkpoint) ends in one line, ``error: <what, the value, what to do>``, and exit status 2: the
traceback of our own code says nothing to someone who typed a wrong flag. A bug of ours (any
other exception) keeps its traceback, which is what a bug report needs. ``--debug`` anywhere on
the command line, or ``TFS_DEBUG=1``, shows the traceback of a user error too.

Which exceptions count as the user's: ``UserError``, which code raises where it has checked an
input; ``ValueError``, the course's convention for a config or data value that fails its check
(``UserError`` is one, so callers that catch ``ValueError`` keep working); the operating
system's file errors (missing, not a directory, no permission, disk full); and running out of
memory (NumPy's ``MemoryError``, torch's out-of-memory errors), which on these sizes means a
batch or context too large for the machine.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from collections.abc import Callable

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "TFS_DEBUG"
USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130


class UserError(ValueError):
    """An input the user can fix; the message names the value and says what to do."""


def is_out_of_memory(error: BaseException) -> bool:
    """NumPy raises MemoryError; torch raises a RuntimeError (its OutOfMemoryError on CUDA,
    "can't allocate memory" on the CPU), which is recognised by its type name or words."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("can't allocate memory" in text
                                                or "out of memory" in text)


def describe(error: BaseException) -> str:
    """The one-line message for a user error: the exception's own words, completed where the
    operating system's are terse (they name the path but not what to do)."""
    if is_out_of_memory(error):
        detail = (str(error).splitlines() or ["an allocation failed"])[0]
        return (f"out of memory: {detail}; lower --batch-size or --block-size (or the model's "
                f"size) until a batch fits in this machine's memory")
    if isinstance(error, OSError) and not isinstance(error, UserError):
        return _describe_os_error(error)
    return str(error)


def _describe_os_error(error: OSError) -> str:
    where = error.filename if error.filename is not None else "a file"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device while writing {where}; free some space, then "
                f"run again (--resume continues from the last checkpoint)")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"permission denied for {where} ({error.strerror}); choose another --out "
                f"directory or make this one writable")
    if error.errno == errno.ENOTDIR or error.errno == errno.EEXIST:
        return f"{where} is a file where a directory was expected; give another --out"
    if error.errno == errno.EISDIR:
        return f"{where} is a directory where a file was expected; give the file's path"
    if error.errno == errno.ENOENT:
        return f"no such file or directory: {where}; check the path"
    return str(error)


# FileNotFoundError raised by our own checks carries a message and no errno; the others come
# from the operating system about a path the user gave.
_USER_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError,
                   PermissionError)
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def is_user_error(error: BaseException) -> bool:
    if isinstance(error, (ValueError, *_USER_OS_ERRORS)) or is_out_of_memory(error):
        return True
    return isinstance(error, OSError) and error.errno in _USER_ERRNOS


def debug_requested(argv: list[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def run_command(main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """``main(argv)`` inside the error boundary (module docstring); returns the exit status.
    ``--debug`` is taken out of ``argv`` before ``main`` parses it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as error:
        if not is_user_error(error):
            raise
        if debug:
            traceback.print_exc()
        print(f"error: {describe(error)}", file=sys.stderr)
        return USER_ERROR_EXIT


_LITERAL = re.compile(r"``([^`]+)``")


def plain_help(docstring: str | None) -> str:
    """A module docstring as ``--help`` shows it: reStructuredText's ``literal`` marks dropped,
    and a line telling how to see a traceback."""
    text = _LITERAL.sub(r"\1", docstring or "").strip()
    return f"{text}\n\n{DEBUG_FLAG} (or {DEBUG_VARIABLE}=1) shows the traceback of an error."
