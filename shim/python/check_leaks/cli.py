"""`python -m check_leaks`: check a script, a module, a code string or a
function for leaks, from a shell or CI."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import pathlib
import runpy
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from . import monitor_cli
from .census import census
from .checker import MAX_RUNS, REPEAT, TIME_ALLOWANCE, TIME_MULTIPLE, WARMUP, check

EXIT_CLEAN, EXIT_LEAKS, EXIT_ERROR = 0, 1, 2

EPILOG = """\
`python -m check_leaks census` lists instead the live objects whose
references nothing accounts for (see `census --help`).
`python -m check_leaks monitor` runs a long-running program, a server or a
worker, and reports what keeps growing in it (see `monitor --help`).

The target runs --warmup times, then --repeat times while the heap is recorded.
A script or module runs as __main__ each time, with sys.argv set to it and
its arguments.

exit status:
  0  nothing leaked
  1  leaks found
  2  usage error, or the target itself failed
"""


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m check_leaks",
        description="Run Python code repeatedly and report what it leaks: each leaked\n"
        "object's allocation site and who holds it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = cli.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "-m", dest="module", metavar="MODULE", help="run a library module as a script"
    )
    target.add_argument("-c", dest="code", metavar="CODE", help="run a string of code")
    target.add_argument(
        "target",
        nargs="?",
        metavar="script.py | pkg.mod:function",
        help="a script to run, or a function to call with no arguments",
    )
    cli.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the script or module")
    cli.add_argument(
        "--repeat",
        type=_positive,
        default=REPEAT,
        metavar="N",
        help=f"measured runs (default: {REPEAT})",
    )
    cli.add_argument(
        "--warmup",
        type=_natural,
        default=WARMUP,
        metavar="N",
        help=f"runs before measuring (default: {WARMUP})",
    )
    cli.add_argument(
        "--max-runs",
        type=_positive,
        default=MAX_RUNS,
        metavar="N",
        help="runs in all through which what grew in every measured run must go on "
        f"growing to be a leak (default: {MAX_RUNS})",
    )
    cli.add_argument(
        "--time-allowance",
        type=_seconds,
        default=TIME_ALLOWANCE,
        metavar="SECONDS",
        help=f"the check may take {TIME_MULTIPLE:g} times the first run plus this "
        f"(default: {TIME_ALLOWANCE:g})",
    )
    for flag, what in (
        ("--json", "the report as JSON"),
        ("--html", "the report as an HTML page"),
        ("--dot", "back-reference graphs for graphviz"),
    ):
        cli.add_argument(flag, type=pathlib.Path, metavar="FILE", help=f"also write {what}")
    return cli


def census_parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="python -m check_leaks census",
        description="List the live objects whose references nothing accounts for,\n"
        "grouped by type. The last line counts them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument(
        "--import",
        dest="modules",
        default="",
        metavar="MOD,MOD,...",
        help="import these modules first",
    )
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["census"]:
        return _census(argv[1:])
    if argv[:1] == ["monitor"]:
        return monitor_cli.main(argv[1:])
    cli = parser()
    ours, theirs = _split(cli, argv)
    options = cli.parse_args(ours)
    options.args = theirs
    if options.max_runs < options.repeat:
        cli.error(f"--max-runs ({options.max_runs}) must be at least --repeat ({options.repeat})")
    try:
        run = _runner(options)
    except (ImportError, AttributeError, OSError, ValueError, SyntaxError) as error:
        cli.error(str(error))  # exits with status 2
    runs = [0]

    # Named as the target is: the report names it by this function.
    @functools.wraps(run)
    def counted() -> None:
        run()
        runs[0] += 1

    try:
        with _exit_said(options, runs):
            report = check(
                counted,
                warmup=options.warmup,
                repeat=options.repeat,
                max_runs=options.max_runs,
                time_allowance=options.time_allowance,
            )
    except SystemExit as exit:
        print(
            f"error: {_describe(options)} called sys.exit({exit.code!r}) in run "
            f"{runs[0] + 1}, after {_runs(runs[0])}: nothing was checked",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception:
        traceback.print_exc()
        print(f"error: {_describe(options)} raised an exception", file=sys.stderr)
        return EXIT_ERROR
    print(report)
    for path, render in (
        (options.json, report.to_json),
        (options.html, report.to_html),
        (options.dot, report.to_dot),
    ):
        if path is not None:
            path.write_text(render(), encoding="utf-8")
    return EXIT_LEAKS if report else EXIT_CLEAN


def _split(cli: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options up to the target, and the target's own arguments: as with
    `python` itself, everything after `-m MODULE`, `-c CODE` or the script
    belongs to the target, options included."""
    # argparse has no public list of the options that take a value.
    valued = {
        flag for action in cli._actions if action.nargs != 0 for flag in action.option_strings
    }
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-m", "-c"):
            return argv[: i + 2], argv[i + 2 :]
        if arg.startswith(("-m", "-c")) or not arg.startswith("-"):  # -mmod, target
            return argv[: i + 1], argv[i + 1 :]
        i += 2 if arg in valued else 1
    return argv, []


def _census(argv: Sequence[str]) -> int:
    cli = census_parser()
    options = cli.parse_args(argv)
    for module in filter(None, options.modules.split(",")):
        try:
            importlib.import_module(module.strip())
        except ImportError as error:
            cli.error(str(error))  # exits with status 2
    print(census())
    return EXIT_CLEAN


def _runner(options: argparse.Namespace) -> Callable[[], None]:
    """One run of the target, as a function of no arguments."""
    if options.code is not None:
        code = compile(options.code, "<string>", "exec")
        return _as_main(
            ["-c", *options.args],
            lambda: exec(code, {"__name__": "__main__"}),
            "-c code",
        )
    if options.module is not None:
        module = options.module
        return _as_main(
            [module, *options.args],
            lambda: runpy.run_module(module, run_name="__main__", alter_sys=True),
            f"-m {module}",
        )
    target = options.target
    if target.endswith(".py") or pathlib.Path(target).is_file():
        if not pathlib.Path(target).is_file():
            raise OSError(f"no such script: {target}")
        return _as_main(
            [target, *options.args],
            lambda: runpy.run_path(target, run_name="__main__"),
            target,
        )
    module_name, colon, attribute = target.partition(":")
    if not colon or not attribute:
        raise ValueError(f"{target!r} is neither a script nor pkg.mod:function")
    if options.args:
        raise ValueError("a function target takes no arguments")
    found: Any = importlib.import_module(module_name)
    for name in attribute.split("."):
        found = getattr(found, name)
    if not callable(found):
        raise ValueError(f"{target} is not callable")
    function: Callable[[], None] = found
    return function


def _as_main(argv: list[str], run: Callable[[], object], label: str) -> Callable[[], None]:
    def run_as_main() -> None:
        saved = sys.argv
        sys.argv = argv
        try:
            run()
        except SystemExit as exit:
            if exit.code not in (None, 0):
                raise
        finally:
            sys.argv = saved

    # The report names the target by its function's module and qualname.
    run_as_main.__module__, run_as_main.__qualname__ = "", label
    return run_as_main


@contextlib.contextmanager
def _exit_said(options: argparse.Namespace, runs: list[int]) -> Iterator[None]:
    """While the target runs, an `os._exit()` in this process says first,
    in one line, that the check did not finish; the process then exits as
    the target asked. A forked child's exit says nothing."""
    real_exit, pid = os._exit, os.getpid()

    def exit_said(status: int) -> NoReturn:
        if os.getpid() == pid:
            print(
                f"error: {_describe(options)} called os._exit({status}) in run {runs[0] + 1}, "
                f"after {_runs(runs[0])}: nothing was checked",
                file=sys.stderr,
                flush=True,
            )
        real_exit(status)

    os._exit = exit_said
    try:
        yield
    finally:
        os._exit = real_exit


def _runs(count: int) -> str:
    return f"{count} complete run" + ("" if count == 1 else "s")


def _describe(options: argparse.Namespace) -> str:
    if options.code is not None:
        return "the code"
    return f"module {options.module}" if options.module else options.target


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _natural(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return value


def _integer(text: str) -> int:
    # argparse would name the function: "invalid _positive value".
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number of seconds, at least 0")
    return value
