"""Mutation testing for the modules that carry the promises: does a small defect fail a test?

Each mutant is one small, realistic defect put into one module: a comparison
off by one (`<` for `<=`), a condition turned round (`and` for `or`, a `not`
dropped), a constant one higher or lower, a statement call left out (an
`os.fsync(...)`, a `DELETE`), an arithmetic sign flipped. For every mutant the
tests that guard the module run against a copy of the repository holding it
(`pytest -x`, so a killed mutant costs only the time to its first failure);
a mutant none of them fails is a survivor: a promise no test guards.

    .venv/bin/python tools/mutants.py                      # every module, 12 mutants each
    .venv/bin/python tools/mutants.py --module spool --mutants 40 --seed 7
    .venv/bin/python tools/mutants.py --list --module writer

Mutants are drawn at random (seeded) from all a module admits; log calls,
docstrings and type annotations are never mutated. The run prints one line
per mutant and, at the end, the survivors with their line and what was
changed, and exits 1 when any survived. It takes minutes per module (the
tests start real daemons against the local PostgreSQL), so it is not part of
the test suite: run it before calling work on these modules done.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: module (short name) -> (its file, the tests that guard it)
MODULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "codec": (
        "collector/receivers/radius/codec.py",
        ("tests/test_radius_codec.py", "tests/test_radius_radclient.py", "tests/test_fuzz.py"),
    ),
    "writer": (
        "collector/sink/writer.py",
        (
            "tests/test_durability.py",
            "tests/test_lifecycle.py",
            "tests/test_sink.py",
            "tests/test_fraud.py",
            "tests/test_files.py",
        ),
    ),
    "spool": (
        "collector/sink/spool.py",
        ("tests/test_spool.py", "tests/test_durability.py", "tests/test_upgrade.py"),
    ),
    "disk": ("collector/disk.py", ("tests/test_durability.py", "tests/test_spool.py")),
    "redact": (
        "collector/pipeline/redact.py",
        (
            "tests/test_privacy.py",
            "tests/test_numbers_privacy.py",
            "tests/test_number_forms.py",
            "tests/test_session_generations.py",
            "tests/test_plausible.py",
            "tests/test_fraud.py",
            "tests/test_reconcile_paths.py",
            "tests/test_number_regions.py",
        ),
    ),
    "billing": (
        "collector/pipeline/billing.py",
        ("tests/test_intake.py", "tests/test_plausible.py", "tests/test_durability.py"),
    ),
    "retention": (
        "collector/retention.py",
        ("tests/test_retention.py", "tests/test_privacy.py", "tests/test_cli.py"),
    ),
    "logs": ("collector/logs.py", ("tests/test_logs.py", "tests/test_privacy.py")),
    "reconcile": (
        "collector/reconcile.py",
        ("tests/test_reconcile.py", "tests/test_reconcile_paths.py"),
    ),
    "freeswitch": (
        "collector/vendors/freeswitch/causes.py",
        ("tests/test_freeswitch_vendor.py", "tests/test_profiles.py", "tests/test_json_cdr.py"),
    ),
    "cisco": ("collector/vendors/cisco.py", ("tests/test_profiles.py",)),
    "kamailio": (
        "collector/vendors/kamailio.py",
        ("tests/test_profiles.py", "tests/test_kamailio_e2e.py"),
    ),
}

_COMPARE_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}
_BINOP_SWAPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
}
_LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "msg"})


@dataclass(frozen=True)
class Mutant:
    """One defect: which node (by its position in a walk of the module) and how."""

    index: int
    kind: str
    line: int
    description: str


def _is_log_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _LOG_METHODS
    )


def _untouchable(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: inside log calls, annotations and docstrings."""
    skip: set[int] = set()

    def mark(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if _is_log_call(node):
            mark(node)
        if isinstance(node, ast.AnnAssign | ast.arg):
            mark(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            mark(node.returns)
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            mark(first)
    return skip


def _candidates(tree: ast.Module) -> Iterator[tuple[int, ast.AST, str, str]]:
    """(walk index, node, kind, description) of every mutation the module admits."""
    skip = _untouchable(tree)
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAPS:
            new = _COMPARE_SWAPS[type(node.ops[0])]
            yield index, node, "compare", f"{type(node.ops[0]).__name__} -> {new.__name__}"
        elif isinstance(node, ast.BoolOp):
            other = "Or" if isinstance(node.op, ast.And) else "And"
            yield index, node, "boolop", f"{type(node.op).__name__} -> {other}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield index, node, "not", "`not x` -> `x`"
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
            new_op = _BINOP_SWAPS[type(node.op)]
            yield index, node, "binop", f"{type(node.op).__name__} -> {new_op.__name__}"
        elif (
            isinstance(node, ast.Constant)
            and type(node.value) is int
            and not isinstance(node.value, bool)
        ):
            yield index, node, "constant+1", f"{node.value} -> {node.value + 1}"
            yield index, node, "constant-1", f"{node.value} -> {node.value - 1}"
        elif (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call | ast.Await)
            and not _is_log_call(node.value)
        ):
            yield index, node, "drop-call", f"call on line {line} left out"
        del line


def mutants_of(source: str) -> list[Mutant]:
    """Every mutant of a module's source."""
    tree = ast.parse(source)
    return [
        Mutant(index, kind, getattr(node, "lineno", 0), description)
        for index, node, kind, description in _candidates(tree)
    ]


def apply(source: str, mutant: Mutant) -> str:
    """The module's source with `mutant` in it."""
    tree = ast.parse(source)
    for index, node in enumerate(ast.walk(tree)):
        if index != mutant.index:
            continue
        if mutant.kind == "compare":
            assert isinstance(node, ast.Compare)
            node.ops[0] = _COMPARE_SWAPS[type(node.ops[0])]()
        elif mutant.kind == "boolop":
            assert isinstance(node, ast.BoolOp)
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        elif mutant.kind == "not":
            assert isinstance(node, ast.UnaryOp)
            node.op = ast.UAdd()  # `+x` where `not x` was: truthiness kept, negation gone
            node.operand = ast.Call(ast.Name("bool", ast.Load()), [node.operand], [])
        elif mutant.kind == "binop":
            assert isinstance(node, ast.BinOp)
            node.op = _BINOP_SWAPS[type(node.op)]()
        elif mutant.kind in ("constant+1", "constant-1"):
            assert isinstance(node, ast.Constant) and isinstance(node.value, int)
            node.value += 1 if mutant.kind == "constant+1" else -1
        elif mutant.kind == "drop-call":
            assert isinstance(node, ast.Expr)
            awaited = isinstance(node.value, ast.Await)
            # an awaited call becomes `await asyncio.sleep(0)`, so the function stays async
            node.value = (
                ast.Await(
                    ast.Call(
                        ast.Attribute(ast.Name("__import__('asyncio')", ast.Load()), "sleep"),
                        [ast.Constant(0)],
                        [],
                    )
                )
                if awaited
                else ast.Constant(None)
            )
        break
    else:
        raise ValueError(f"no node {mutant.index} in the module")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def copy_repository(into: Path) -> None:
    """The tracked files of the repository (as they are in the work tree) under `into`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        path = Path(name.decode())
        source = ROOT / path
        if source.is_file():
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(copy: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[str, str]:
    """('killed', the test that failed), ('survived', '') or ('timeout', '') (a
    defect that hangs a test counts as killed)."""
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=copy,
            env=env,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout", ""
    output = result.stdout.decode(errors="replace")
    if result.returncode == 0:
        return "survived", ""
    if result.returncode in (1, 3):  # tests failed, or an error inside them
        failed = [
            line.split()[1]
            for line in output.splitlines()
            if line.startswith(("FAILED ", "ERROR "))
        ]
        return "killed", (failed[0].split(" - ")[0] if failed else "")
    tail = output[-2000:]
    raise RuntimeError(f"pytest could not run (exit {result.returncode}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES))
    parser.add_argument("--mutants", type=int, default=12, help="per module (0: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument(
        "--timeout-factor", type=float, default=3.0, help="a run longer than this x the clean one"
    )
    args = parser.parse_args(argv)
    modules = args.module or sorted(MODULES)
    rng = random.Random(args.seed)
    survivors: list[tuple[str, Mutant]] = []
    totals = {"killed": 0, "survived": 0, "timeout": 0}
    with tempfile.TemporaryDirectory(prefix="mutants-") as scratch:
        copy = Path(scratch)
        copy_repository(copy)
        for name in modules:
            path, tests = MODULES[name]
            original = (ROOT / path).read_text(encoding="utf-8")
            every = mutants_of(original)
            chosen = (
                every if args.mutants == 0 else rng.sample(every, min(args.mutants, len(every)))
            )
            chosen.sort(key=lambda m: (m.line, m.index, m.kind))
            print(
                f"== {name}: {path}, {len(chosen)} of {len(every)} mutants; tests: {' '.join(tests)}"
            )
            if args.list:
                for mutant in chosen:
                    print(f"   line {mutant.line:>4}  {mutant.kind:<11} {mutant.description}")
                continue
            started = time.monotonic()
            if run_tests(copy, tests, timeout_s=1800)[0] != "survived":
                print(f"   the tests fail without any mutant: {name} skipped")
                continue
            clean_s = time.monotonic() - started
            print(f"   clean run {clean_s:.0f} s")
            target = copy / path
            for mutant in chosen:
                target.write_text(apply(original, mutant), encoding="utf-8")
                began = time.monotonic()
                verdict, by = run_tests(
                    copy, tests, timeout_s=max(60.0, clean_s * args.timeout_factor)
                )
                totals[verdict] += 1
                print(
                    f"   line {mutant.line:>4}  {mutant.kind:<11} {mutant.description:<32}"
                    f" {verdict} ({time.monotonic() - began:.0f} s) {by}",
                    flush=True,
                )
                if verdict == "survived":
                    survivors.append((path, mutant))
            target.write_text(original, encoding="utf-8")
    if args.list:
        return 0
    ran = sum(totals.values())
    print(
        f"\n{ran} mutants: {totals['killed']} killed, {totals['timeout']} timed out (killed),"
        f" {totals['survived']} survived"
        + (f"; score {100 * (ran - totals['survived']) / ran:.0f} %" if ran else "")
    )
    for path, mutant in survivors:
        print(f"SURVIVED {path}:{mutant.line}  {mutant.kind}  {mutant.description}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
