"""Which modules are compiled with mypyc, and whether this process runs them compiled.

`setup.py` compiles the modules of HOT_MODULES (the per-record path: RADIUS
decoding and the vendor profiles, normalization, redaction, the intake and
the writer) into C extensions beside their sources, and writes MANIFEST:
the SHA-256 of each source it compiled. The package's `__init__` calls
`choose()`, which decides once for the whole process: compiled, unless the
environment variable PURE_PYTHON_VARIABLE is set (to anything but 0), or the
installation is not as it was built (an extension or the manifest missing,
or a source changed since it was compiled: an editable install whose module
was edited; a line on stderr says which). Then every hot module is imported
from its `.py` file: compiled and pure modules are never mixed, since
compiled modules call each other's compiled code directly. This module stays pure Python (it is what picks)
and imports only the standard library: setup.py loads it alone.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: the modules compiled by mypyc, in one group (one shared library). Not
#: collector.model: `StoredCdr`'s `Annotated` column declarations are read at
#: run time (collector.sink.columns), and mypyc does not keep them; its
#: `CallRecord`, made and read for every record, lives in collector.record. Not
#: collector.telemetry: `Health` overrides `__setattr__` and reads `__dict__`,
#: which a compiled (native) class has not, and compiled code assigns its
#: attributes without calling `__setattr__`.
HOT_MODULES: tuple[str, ...] = (
    "collector.receivers.addresses",
    "collector.receivers.radius.codec",
    "collector.receivers.radius.dictionary",
    "collector.receivers.radius.profiles",
    "collector.receivers.radius.receiver",
    "collector.vendors.cisco",
    "collector.vendors.freeswitch.causes",
    "collector.vendors.freeswitch.legs",
    "collector.vendors.freeswitch.radius_cdr",
    "collector.vendors.kamailio",
    "collector.record",
    "collector.series",
    "collector.pipeline.intake",
    "collector.pipeline.billing",
    "collector.pipeline.plausible",
    "collector.pipeline.numbers",
    "collector.pipeline.outcome",
    "collector.pipeline.privacy",
    "collector.pipeline.redact",
    "collector.sink.postgres",
    "collector.sink.writer",
)

#: set to a non-empty value other than 0: import the hot modules from their sources
PURE_PYTHON_VARIABLE = "CDR_COLLECTOR_PURE_PYTHON"

#: beside this module: "<module> <sha256 of its source>" per compiled module
MANIFEST = "compiled-sources.txt"

_PACKAGE_DIR = Path(__file__).resolve().parent

#: why this process runs the hot modules as Python ("" when compiled); set by choose()
_pure_reason: str | None = None


def source_path(module: str, root: Path) -> Path:
    """The `.py` file of a hot module under `root` (the directory holding `collector`)."""
    return root.joinpath(*module.split(".")).with_suffix(".py")


def source_digest(path: Path) -> str:
    """What MANIFEST records of a source file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_text(root: Path) -> str:
    """MANIFEST's content for the sources under `root`, as the build writes it."""
    return "".join(
        f"{module} {source_digest(source_path(module, root))}\n" for module in HOT_MODULES
    )


def missing_compiler() -> str:
    """Why no C extension can be built here ("" when one can): what the build checks
    before it asks for mypy and compiles, and what the tests check it compiled by."""
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").is_file():
        return f"no Python headers ({include}/Python.h; Debian: python3-dev)"
    return ""


def _extension_of(module: str) -> Path | None:
    """The compiled extension file of a hot module beside its source, if there is one."""
    base = source_path(module, _PACKAGE_DIR.parent).with_suffix("")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.exists():
            return candidate
    return None


def _why_pure() -> str:
    """Why the hot modules must be imported from source here ("" when they need not)."""
    if os.environ.get(PURE_PYTHON_VARIABLE, "") not in ("", "0"):
        return f"{PURE_PYTHON_VARIABLE} is set"
    missing = [module for module in HOT_MODULES if _extension_of(module) is None]
    if len(missing) == len(HOT_MODULES):
        return "not compiled"
    if missing:
        return f"not every hot module is compiled ({', '.join(missing)} is not)"
    try:
        recorded = (_PACKAGE_DIR / MANIFEST).read_text(encoding="ascii")
    except OSError:
        return f"{MANIFEST} is missing"
    if recorded != manifest_text(_PACKAGE_DIR.parent):
        return "sources changed since they were compiled; reinstall to compile them again"
    return ""


class _SourceFinder:
    """A meta path finder that loads the hot modules from their `.py` files."""

    @classmethod
    def find_spec(
        cls,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in HOT_MODULES or path is None:
            return None
        name = fullname.rpartition(".")[2] + ".py"
        for directory in path:
            candidate = Path(directory) / name
            if candidate.is_file():
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


def choose() -> None:
    """Decide, once per process and before any hot module is imported, how they run."""
    global _pure_reason
    if _pure_reason is not None:
        return
    _pure_reason = _why_pure()
    if _pure_reason and _pure_reason != "not compiled":
        sys.meta_path.insert(0, _SourceFinder)
        if not _pure_reason.startswith(PURE_PYTHON_VARIABLE):
            # an installation not as it was built: worth a line wherever it runs
            print(f"cdr-collector: running pure Python: {_pure_reason}", file=sys.stderr)


def running_compiled() -> bool:
    """Whether this process runs the hot modules compiled."""
    choose()
    return _pure_reason == ""


def pure_python_reason() -> str:
    """Why this process runs the hot modules as Python ("" when it runs them compiled)."""
    choose()
    return _pure_reason or ""


def compiled_modules() -> dict[str, bool]:
    """Each hot module (imported here if it was not), and whether it was loaded compiled."""
    loaded = {}
    for module in HOT_MODULES:
        spec = importlib.import_module(module).__spec__
        loaded[module] = spec is not None and isinstance(
            spec.loader, importlib.machinery.ExtensionFileLoader
        )
    return loaded
