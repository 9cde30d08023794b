"""Compile leakext.c against the running interpreter: for the tests'
fixture and the benchmarks."""

import pathlib
import shlex
import subprocess
import sysconfig

SOURCE = pathlib.Path(__file__).parent / "leakext.c"


def build(out: pathlib.Path) -> pathlib.Path:
    """Compile the extension into `out`; its path."""
    target = out / f"leakext{sysconfig.get_config_var('EXT_SUFFIX')}"
    compiler = shlex.split(sysconfig.get_config_var("CC"))
    include = sysconfig.get_path("include")
    subprocess.run(
        [
            *compiler,
            "-shared",
            "-fPIC",
            "-g",
            f"-I{include}",
            str(SOURCE),
            "-lz",
            "-o",
            str(target),
        ],
        check=True,
    )
    return target
