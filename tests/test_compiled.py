"""The compiled hot path (mypyc, see collector/compiled.py and setup.py).

Where a C compiler is, the build must have compiled every hot module: a
build that fell back to pure Python there is a broken build, and this
fails rather than let the suite pass on the slower path it did not mean to
test. Compiled and pure Python must make the same records, refusals and
answers of the same packets (tests/compiled_corpus.py, run once each way in
processes of their own). The choice between the two holds for a whole
process: the environment variable, or a source changed since it was
compiled, makes every hot module load from its `.py` file. And the code
keeps clear of a mypyc limitation that compiles without complaint and then
fails only when the path runs.
"""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from collector import compiled
from collector.receivers.radius.config import PROFILES
from collector.telemetry import PACKET_OUTCOMES

ROOT = Path(__file__).resolve().parent.parent
RELEASE = metadata.version("cdr-collector")


def build_info(compiled_label: str) -> list[str]:
    """The build-info series of a process that runs compiled ("true") or not ("false")."""
    return [f'cdr_collector_build_info{{compiled="{compiled_label}",version="{RELEASE}"}} 1.0']


#: what a process reports of how it runs: its reason for pure Python, each hot module
#: and whether it was loaded compiled, and the build-info series it exposes
REPORT = """
import json
from collector import compiled
from collector.telemetry import Telemetry

info = [
    line for line in Telemetry().exposition().decode().splitlines()
    if line.startswith("cdr_collector_build_info{")
]
print(json.dumps([compiled.pure_python_reason(), compiled.compiled_modules(), info]))
"""


def run_python(
    args: list[str], pure: bool, cwd: Path = ROOT, path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != compiled.PURE_PYTHON_VARIABLE}
    if pure:
        env[compiled.PURE_PYTHON_VARIABLE] = "1"
    if path is not None:
        env["PYTHONPATH"] = str(path)
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def report(pure: bool = False, path: Path | None = None) -> tuple[str, dict[str, bool], list[str]]:
    done = run_python(["-c", REPORT], pure, cwd=path or ROOT, path=path)
    reason, modules, info = json.loads(done.stdout)
    return reason, modules, info


def test_the_build_compiled_every_hot_module_where_a_compiler_is() -> None:
    missing = compiled.missing_compiler()
    reason, modules, info = report()
    assert list(modules) == list(compiled.HOT_MODULES)
    if missing:
        # no compiler or headers here: the build installed (and must run) pure Python
        assert not any(modules.values()), modules
        assert info == build_info("false")
        return
    python = [module for module, loaded_compiled in modules.items() if not loaded_compiled]
    assert not reason and not python, (
        f"a C compiler is here, yet {len(python)} hot module(s) run as Python ({reason}): the"
        " build fell back to pure Python or is older than the sources; `pip install -v -e"
        " '.[dev]'` compiles them again and says why it could not"
    )
    assert info == build_info("true")
    # and the variable turns it all to Python in the same installation
    reason, modules, info = report(pure=True)
    assert reason == f"{compiled.PURE_PYTHON_VARIABLE} is set"
    assert not any(modules.values())
    assert info == build_info("false")


def _first_difference(left: list[str], right: list[str]) -> str:
    for index, (one, other) in enumerate(zip(left, right, strict=False)):
        if one != other:
            first, second = json.loads(one), json.loads(other)
            keys = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
            return f"line {index} (packet {first.get('packet')}) differs in {keys}"
    return f"{len(left)} lines against {len(right)}"


def test_compiled_and_pure_python_make_the_same_records_refusals_and_answers() -> None:
    runs = {}
    for pure in (False, True):
        done = run_python(["-m", "tests.compiled_corpus"], pure)
        header, *lines = done.stdout.splitlines()
        runs[pure] = (json.loads(header), lines)
    (as_built, built_lines), (as_python, python_lines) = runs[False], runs[True]
    assert as_built["compiled"] == (not compiled.missing_compiler()), as_built
    assert as_python == {"compiled": False, "reason": f"{compiled.PURE_PYTHON_VARIABLE} is set"}
    assert built_lines == python_lines, _first_difference(built_lines, python_lines)
    # the corpus reaches what it is meant to: rows under every profile, every refusal
    results: list[dict[str, Any]] = [json.loads(line) for line in python_lines]
    assert {r["profile"] for r in results if "row" in r} == set(PROFILES)
    assert {r["not_a_call"] for r in results if "not_a_call" in r} == {
        "no_session_id",
        "no_status_type",
        "unsupported_status_type",
    }
    assert {"truncated", "bad_length", "attribute_length"} <= {
        r["malformed"] for r in results if "malformed" in r
    }
    counted = {key.split("/")[1] for r in results for key in r.get("counted", {})}
    # every outcome but an overload (a full writer queue, which the corpus does not make)
    assert counted == set(PACKET_OUTCOMES) - {"overloaded"}
    assert any(r.get("unusable") for r in results)
    assert not [r for r in results if "error" in r]


def _tree_with_fake_extensions(tmp_path: Path) -> Path:
    """A copy of the package's sources with an unloadable "extension" beside each hot
    module and the manifest of those sources: importing any of them compiled fails."""
    root = tmp_path / "tree"
    shutil.copytree(
        ROOT / "collector",
        root / "collector",
        ignore=shutil.ignore_patterns("*.so", "__pycache__", compiled.MANIFEST),
    )
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for module in compiled.HOT_MODULES:
        source = compiled.source_path(module, root)
        source.with_name(source.stem + suffix).write_bytes(b"not a shared object")
    (root / "collector" / compiled.MANIFEST).write_text(compiled.manifest_text(root))
    return root


def test_a_process_runs_every_hot_module_from_source_when_told_or_when_one_changed(
    tmp_path: Path,
) -> None:
    root = _tree_with_fake_extensions(tmp_path)
    check = "from collector import compiled; print(compiled.pure_python_reason())"
    # extensions matching their sources: they are what would be loaded
    assert run_python(["-c", check], pure=False, cwd=root, path=root).stdout == "\n"
    # told: every hot module from its source, though an "extension" sits beside it
    reason, modules, _info = report(pure=True, path=root)
    assert reason == f"{compiled.PURE_PYTHON_VARIABLE} is set"
    assert modules == dict.fromkeys(compiled.HOT_MODULES, False)
    # one source changed since the build: all of them from source, and it says so once
    changed = compiled.source_path("collector.pipeline.billing", root)
    changed.write_text(changed.read_text() + "\n# edited after the build\n")
    done = run_python(["-c", REPORT], pure=False, cwd=root, path=root)
    reason, modules, info = json.loads(done.stdout)
    assert reason.startswith("sources changed since they were compiled")
    assert modules == dict.fromkeys(compiled.HOT_MODULES, False)
    assert info == build_info("false")
    assert done.stderr.count("running pure Python: sources changed") == 1, done.stderr
    # no manifest: nothing says what the extensions were built from
    (root / "collector" / compiled.MANIFEST).unlink()
    reason, modules, _info = report(path=root)
    assert reason == f"{compiled.MANIFEST} is missing"
    assert not any(modules.values())
    # one extension missing: the others are not used either
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    changed.with_name(changed.stem + suffix).unlink()
    reason, modules, _info = report(path=root)
    assert reason == "not every hot module is compiled (collector.pipeline.billing is not)"
    assert not any(modules.values())


def _classes_of_hot_modules() -> set[str]:
    return {
        node.name
        for module in compiled.HOT_MODULES
        for node in ast.walk(ast.parse(compiled.source_path(module, ROOT).read_text()))
        if isinstance(node, ast.ClassDef)
    }


def test_no_hot_function_binds_one_except_name_to_two_compiled_classes() -> None:
    """Compiled, a local variable holds one type: `except A as exc` and later
    `except B as exc` in one function, A and B compiled classes, raise TypeError
    when B is caught (mypyc compiles it without a word). Each clause its own name."""
    native = _classes_of_hot_modules()
    found = []
    for module in compiled.HOT_MODULES:
        path = compiled.source_path(module, ROOT)
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            bound: dict[str, set[str]] = {}
            named: dict[str, set[str]] = {}
            for handler in ast.walk(function):
                if isinstance(handler, ast.ExceptHandler) and handler.name and handler.type:
                    bound.setdefault(handler.name, set()).add(ast.unparse(handler.type))
                    named.setdefault(handler.name, set()).update(
                        node.id if isinstance(node, ast.Name) else node.attr
                        for node in ast.walk(handler.type)
                        if isinstance(node, ast.Name | ast.Attribute)
                    )
            found += [
                f"{path.relative_to(ROOT)}: {function.name}: {name} is {sorted(types)}"
                for name, types in bound.items()
                if len(types) > 1 and named[name] & native
            ]
    assert not found, found
