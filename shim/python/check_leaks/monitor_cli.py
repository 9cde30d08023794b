"""`python -m check_leaks monitor`: run a whole program, a server or a
worker, under a `Monitor`, with no change to its code."""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import runpy
import signal as signals
import sys
from collections.abc import Sequence

from . import reportdir, timeline
from .monitor import Monitor, parse_signal

EPILOG = f"""\
Everything after the script or `-m module` is that program's own arguments,
as under `python`. A checkpoint is taken every --checkpoint; a group of new
objects (type and allocation site) that goes on growing through
{timeline.VERDICT_CHECKPOINTS} checkpoints or more is a leak, one that stops
(a cache once full) is not. Allocation sites are traced only once some type
has grown through the later half of {timeline.SITE_CHECKPOINTS} checkpoints,
unless --sites always.

reports, in --report-dir (made 0700, files 0600, each replaced atomically):
  report.txt, report.json, report.html   written on --signal (default SIGUSR2),
                                         when DIR/trigger is touched, every
                                         --every, and when the program ends
  history/                               every report written
  <pid>/                                 the same for each forked worker

gunicorn's master upgrades itself on SIGUSR2, and its workers reset it:
touch DIR/trigger instead, or choose another --signal.

exit status: the program's own.
"""


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m check_leaks monitor",
        description="Run a long-running program (a server, a worker) and report what\n"
        "keeps growing in it: each group's allocation site and who holds it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script")
    cli.add_argument("script", nargs="?", metavar="script.py", help="a script to run")
    cli.add_argument("args", nargs=argparse.REMAINDER, help="the program's own arguments")
    cli.add_argument(
        "--report-dir",
        type=pathlib.Path,
        default=pathlib.Path("check-leaks-report"),
        metavar="DIR",
        help="where reports are written (default: check-leaks-report)",
    )
    cli.add_argument(
        "--every",
        type=duration,
        metavar="DURATION",
        help="also write a report this often: 30s, 5m, 1h (default: never)",
    )
    cli.add_argument(
        "--checkpoint",
        type=duration,
        default=1.0,
        metavar="DURATION",
        help="take a checkpoint this often (default: 1s)",
    )
    cli.add_argument(
        "--signal",
        type=_signal,
        default="SIGUSR2",
        metavar="SIGNAL",
        help="write a report when this signal arrives (default: SIGUSR2)",
    )
    cli.add_argument(
        "--sites",
        choices=("auto", "always", "never"),
        default="auto",
        help="trace allocation sites once something grows (auto), from the start, or never",
    )
    cli.add_argument(
        "--no-redact",
        dest="redact",
        action="store_false",
        help="keep secret-looking values (tokens, cookies, passwords) in reprs",
    )
    return cli


def main(argv: Sequence[str]) -> int:
    cli = parser()
    ours, theirs = _split(cli, list(argv))
    options = cli.parse_args(ours)
    if (options.module is None) == (options.script is None):
        cli.error("give a script or -m MODULE to run")
    if options.script is not None and not pathlib.Path(options.script).is_file():
        cli.error(f"no such script: {options.script}")
    name = f"-m {options.module}" if options.module else options.script
    monitor = Monitor(
        name,
        unit="second",
        interval=options.checkpoint,
        report_dir=options.report_dir,
        report_every=options.every,
        signal=options.signal,
        sites=options.sites,
        redact=options.redact,
    )
    try:
        monitor.start()
    except OSError as error:
        cli.error(f"cannot use --report-dir: {error}")
    print(
        f"check_leaks monitor: reports go to {monitor.report_dir}: send "
        f"{signals.Signals(options.signal).name} to pid {os.getpid()}, or touch "
        f"{options.report_dir / reportdir.TRIGGER}",
        file=sys.stderr,
    )
    code: int | str | None = 0
    try:
        if options.module is not None:
            sys.argv = [options.module, *theirs]
            runpy.run_module(options.module, run_name="__main__", alter_sys=True)
        else:
            sys.argv = [options.script, *theirs]
            runpy.run_path(options.script, run_name="__main__")
    except SystemExit as exit:
        code = exit.code
    finally:
        report = monitor.stop()
        where = monitor.report_dir
        print(f"check_leaks monitor: {report.summary()}; report in {where}", file=sys.stderr)
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def _split(cli: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options up to the program, and the program's own arguments."""
    # argparse has no public list of the options that take a value.
    valued = {
        flag for action in cli._actions if action.nargs != 0 for flag in action.option_strings
    }
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "-m":
            return argv[: i + 2], argv[i + 2 :]
        if arg.startswith("-m") and not arg.startswith("--"):
            return argv[: i + 1], argv[i + 1 :]
        if not arg.startswith("-"):
            return argv[: i + 1], argv[i + 1 :]
        i += 2 if arg in valued else 1
    return argv, []


_DURATION = re.compile(r"(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|m|h)?")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """Seconds in `text`: "30s", "5m", "1h", "250ms", or a bare number of seconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 30s, 5m or 1h)")
    seconds = float(match["value"]) * _SECONDS[match["unit"]]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0: {text!r}")
    return seconds


def _signal(text: str) -> int:
    try:
        return parse_signal(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
