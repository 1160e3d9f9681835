"""Builds cdr-collector, compiling its per-record hot path with mypyc where it can.

The project's metadata is in pyproject.toml; this file adds only the C
extensions. Where a C compiler and Python's headers are found, the build
asks for mypy (mypyc), the dependencies and their type stubs (mypyc compiles
from the types mypy sees, and they must be the types `mypy` checks), and
compiles the modules of `collector.compiled.HOT_MODULES`. Without a
compiler, or when compiling fails, the package installs as pure Python and
one line of the build output says why (`pip install -v` shows it). Either
way every `.py` source is installed too, and `CDR_COLLECTOR_PURE_PYTHON=1`
runs them instead of the compiled modules.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, cast

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError

ROOT = Path(__file__).resolve().parent

if TYPE_CHECKING:
    from collector import compiled
else:
    # collector/compiled.py alone: it needs only the standard library (the build
    # environment has none of the package's dependencies), and the package's
    # __init__ would decide how to import the hot modules, here of all places
    _spec = importlib.util.spec_from_file_location("_compiled", ROOT / "collector" / "compiled.py")
    compiled = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(compiled)

#: where mypyc writes its C and its type-check cache (git-ignored)
TARGET = Path("build") / "mypyc"
#: the commands that build (setuptools also runs this file for metadata and for
#: the build requirements alone, where mypyc would have nothing to do)
BUILD_COMMANDS = frozenset({"build", "build_ext", "bdist_wheel", "editable_wheel", "install"})
#: of the dev requirements, what compiling needs besides the dependencies
COMPILE_TOOLS = ("mypy", "asyncpg-stubs")


def say(line: str) -> None:
    print(f"cdr-collector build: {line}", file=sys.stderr, flush=True)


def compile_requirements() -> list[str]:
    """What the build environment needs to compile (none without a compiler):
    pyproject.toml's dependencies, and its pinned mypy and stubs."""
    if compiled.missing_compiler():
        return []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    tools = [
        requirement
        for requirement in project["optional-dependencies"]["dev"]
        if re.split(r"[^A-Za-z0-9_.-]", requirement, maxsplit=1)[0] in COMPILE_TOOLS
    ]
    return [*tools, *project["dependencies"]]


def mypyc_extensions() -> list[Extension]:
    """The C extensions of the hot modules, or none when they cannot be made."""
    reason = compiled.missing_compiler()
    if not reason and importlib.util.find_spec("mypyc") is None:
        reason = "mypyc is not installed in the build environment"
    if reason:
        say(f"installing pure Python: {reason}")
        return []
    from mypyc.build import mypycify

    sources = [str(compiled.source_path(module, Path("."))) for module in compiled.HOT_MODULES]
    started = time.monotonic()
    try:
        # mypy's configuration is pyproject.toml's (strict), as for `mypy` itself
        extensions = mypycify(
            ["--cache-dir", str(TARGET / "cache"), *sources],
            group_name="collector",
            target_dir=str(TARGET),
        )
    except (Exception, SystemExit) as error:  # noqa: BLE001 - any failure means: no C
        say(f"installing pure Python: mypyc failed ({error})")
        return []
    say(f"mypyc generated C for {len(sources)} modules in {time.monotonic() - started:.0f} s")
    # setuptools' Extension: mypyc makes them with setuptools when it is imported
    return cast(list[Extension], extensions)


class BuildHotPath(build_ext):
    """build_ext that falls back to pure Python when the C compile fails, and writes
    the manifest of compiled sources beside the extensions."""

    def run(self) -> None:
        if not self.extensions:
            return
        started = time.monotonic()
        try:
            super().run()
        except (CCompilerError, BaseError, OSError) as error:
            say(f"installing pure Python: the C compile failed ({error})")
            for output in self.get_outputs():
                if os.path.exists(output):
                    os.remove(output)
            return
        say(f"compiled the C in {time.monotonic() - started:.0f} s")
        text = compiled.manifest_text(ROOT)
        # the build tree (what a wheel holds), and the source tree of an editable install
        places = [Path(self.build_lib) / "collector"]
        if self.inplace or self.editable_mode:
            places.append(ROOT / "collector")
        for place in places:
            if place.is_dir():
                (place / compiled.MANIFEST).write_text(text, encoding="ascii")


setup(
    # PEP 517: setuptools reports these to pip as the build's own requirements
    setup_requires=compile_requirements(),
    ext_modules=mypyc_extensions() if BUILD_COMMANDS.intersection(sys.argv) else [],
    cmdclass={"build_ext": BuildHotPath},
)
