"""Failures with a known cause, and how every command of ours reports them.

A known failure is raised as one of the classes below; its message names the file or option at
fault and the fix. Each also derives from the built-in exception it refines (``ValueError``,
``FileNotFoundError``, ...), so callers that catch those keep working. Commands wrap their work
in :func:`report_errors`: a known failure prints one line, ``<prog>: error: <message>``, and exits
with status 2; Ctrl-C prints ``<prog>: interrupted`` and exits with status 130 (128 + SIGINT, what a
shell reports); any other exception is a bug and keeps its traceback.
"""
import contextlib
import sys

EXIT_KNOWN_FAILURE = 2
EXIT_INTERRUPTED = 130


class FnFError(Exception):
    """A failure whose cause is known; the message says what is wrong, where, and the fix."""


class ConfigError(FnFError, ValueError):
    """An option, flag or option file that cannot be used as given."""


class DataError(FnFError, ValueError):
    """Input data that is missing, truncated, corrupt, incomplete or of the wrong layout."""


class MissingInputError(FnFError, FileNotFoundError):
    """A file or folder that the command needs does not exist."""


class OutputExistsError(FnFError, FileExistsError):
    """An output that exists already and may not be replaced without ``--overwrite``."""


class OutputError(FnFError, OSError):
    """An output that cannot be written (no such parent folder, read-only, full disk, ...)."""


class DeviceError(FnFError, RuntimeError):
    """A device that was asked for but is not available."""


def one_line(error):
    """The message of ``error`` on one line (continuation lines joined with ' ').

    A failure inside a DataLoader worker comes back with the worker's traceback in its message
    ("Caught X in DataLoader worker process 0. Original Traceback ..."): only the original message,
    its last line, is kept.
    """
    lines = [part.strip() for part in str(error).splitlines() if part.strip()]
    if len(lines) > 1 and lines[1].startswith('Original Traceback'):
        return lines[-1].split(': ', 1)[-1]
    return ' '.join(lines)


@contextlib.contextmanager
def report_errors(prog, known=(FnFError,)):
    """Turn the known failures raised inside the block into ``<prog>: error: <message>`` and exit 2.

    ``known`` may add exception classes that count as known for this command (e.g. BasicSR's).
    A ``KeyboardInterrupt`` (Ctrl-C) prints ``<prog>: interrupted`` (and its message, if the block
    raised one saying what was kept) and exits 130. Everything else propagates with its traceback.
    """
    try:
        yield
    except known as error:
        print(f'{prog}: error: {one_line(error)}', file=sys.stderr)
        raise SystemExit(EXIT_KNOWN_FAILURE) from None
    except KeyboardInterrupt as error:
        detail = one_line(error)
        print(f'{prog}: interrupted' + (f'; {detail}' if detail else ''), file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
