"""The ``vidrestore`` command: a thin click group.

Sub-commands live in their own modules and are imported only when invoked, so that
``vidrestore --version`` and ``vidrestore --help`` never import torch. Every typed
``VidrestoreError`` becomes one line on stderr and its exit code; no traceback.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator, NoReturn

import click

from vidrestore import interrupts
from vidrestore._version import __version__
from vidrestore.errors import (MEMORY_ADVICE, InternalError, Interrupted, ProcessingError, VidrestoreError,
                               interrupted_by, is_memory_exhaustion)

# command name -> (module, attribute, one-line help shown by --help without importing it)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "enhance": ("vidrestore.cli.enhance", "enhance", "Deblur and/or interpolate a video to K times its frame rate."),
    "info": ("vidrestore.cli.info", "info", "Show a video's streams, size, frame rate, frame count and duration."),
    "eval": ("vidrestore.cli.evaluate", "eval_cmd",
             "Score the model and classical baselines against sharp ground truth."),
    "bench": ("vidrestore.cli.bench", "bench", "Measure model and end-to-end throughput and memory."),
    "train": ("vidrestore.cli.train", "train", "Train the flow-prior network from a recipe (resumable)."),
    "weights": ("vidrestore.cli.weights", "weights", "List, verify or download model weights."),
}


def fail(err: VidrestoreError) -> NoReturn:
    click.echo(f"vidrestore: error: {err}", err=True)
    sys.exit(err.exit_code)


# handlers an interrupt replaced with SIG_IGN; given back only to callers that pass their own args
_ignored: dict[int, object] = {}


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM (a service manager, ``docker stop``, ``kill``) take one path: partial
    output removed, training checkpointed, exit code 130; one that arrives mid-import waits for the
    import (``interrupts.raise_interrupt``). Once interrupted, further SIGINT/SIGTERM are ignored
    until the process exits (the cleanup is done, the one-line message follows), so two signals in
    quick succession end the same way as one. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, interrupts.raise_interrupt) for signum in interrupts.SIGNALS}
    try:
        yield
        interrupts.raise_pending()  # it came during an import near the end: still an interrupt
    except KeyboardInterrupt:
        interrupts.ignore_from_now()
        _ignored.update(previous)
        raise
    finally:
        if not _ignored:
            interrupts.restore(previous)


def _interrupted(command: str | None) -> Interrupted:
    done = interrupts.committed()
    if done and command == "enhance":  # the signal came after the final rename: the output is complete and stays
        return Interrupted(f"interrupted after the output was written: {done[-1]}")
    if command == "train" and "--fill-cache" in sys.argv[1:]:
        return Interrupted("interrupted; the cache keeps every complete shard (run the same command again to add more)")
    if command == "train":
        return Interrupted("interrupted; the run is checkpointed (run the same command again to continue)")
    return Interrupted("interrupted; no output was written")


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        interrupts.reset()
        try:
            with _signals_as_interrupt():
                return super().invoke(ctx)
        except VidrestoreError as err:
            fail(err)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # a bug: one line, no traceback (VIDRESTORE_DEBUG=1 shows it)
            if os.environ.get("VIDRESTORE_DEBUG"):
                raise
            if interrupted_by(err):  # an interrupt that landed inside a lock's bookkeeping
                for signum, handler in interrupts.ignore_from_now().items():
                    _ignored.setdefault(signum, handler)
                fail(_interrupted(ctx.invoked_subcommand))
            if is_memory_exhaustion(err):  # the machine, not a bug: torch, OpenCV or the encoder ran out
                fail(ProcessingError(MEMORY_ADVICE))
            name = ctx.invoked_subcommand or "vidrestore"
            fail(InternalError(f"'{name}' failed unexpectedly ({type(err).__name__}): this is a bug in vidrestore; "
                               "run again with VIDRESTORE_DEBUG=1 for the details and report them"))
        except KeyboardInterrupt:
            for signum, handler in interrupts.ignore_from_now().items():  # an interrupt outside the block above
                _ignored.setdefault(signum, handler)
            fail(_interrupted(ctx.invoked_subcommand))

    def main(self, args=None, *rest, **kwargs):
        """The console script (no ``args``: sys.argv) keeps SIGINT/SIGTERM ignored after an interrupt
        until the process has exited; a caller passing its own ``args`` (tests, embedding) gets its
        handlers back."""
        try:
            return super().main(args, *rest, **kwargs)
        finally:
            if args is None:  # the process is exiting: a late signal must not print a traceback from threading
                interrupts.ignore_from_now()
            if args is not None and _ignored and threading.current_thread() is threading.main_thread():
                interrupts.restore(_ignored)
            if args is not None:
                _ignored.clear()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="vidrestore")
def main() -> None:
    """vidrestore: sharp, smooth video from blurry, low-frame-rate video.

    One neural network for joint deblurring and interpolation (2x to 16x). The shipped weights interpolate at
    the level of optical flow (DIS) and do not deblur yet: see the model card.
    """
