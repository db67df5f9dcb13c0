"""Find a Python interpreter new enough for LocalStack and the Lambda runtime (>= 3.12, 3.13 preferred).

Runnable as a script with any Python 3 (the Makefile uses it before the project venv exists):
``python3 infra/src/photopipe_infra/pythons.py`` prints the interpreter's path, or one line naming what was
searched and exits 1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

MINIMUM = (3, 12)
PREFERRED = (3, 13)
NAMES = ("python3.13", "python3.12", "python3.14", "python3", "python")


class NoSuitablePython(RuntimeError):
    pass


def _version(executable: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [executable, "-I", "-S", "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def candidates() -> list[str]:
    """Interpreters to consider: names on PATH, then every pyenv version's python3, newest first.

    pyenv's shims are left out: every interpreter they can run is among its versions, asked directly (a shim
    is a shell script that takes a tenth of a second to start, and fails for a version not selected)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    shims = pyenv_root / "shims"
    found: list[str] = []
    for name in NAMES:
        path = shutil.which(name)
        if path and Path(path).parent != shims:
            found.append(path)
    versions = (pyenv_root / "versions").glob("*/bin/python3")
    found += [str(p) for p in sorted(versions, key=lambda p: _release(p.parent.parent.name), reverse=True)]
    unique: dict[str, None] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), None)
    return list(unique)


def _release(name: str) -> tuple[int, ...]:
    """A pyenv version folder's release as numbers ("3.13.0" → (3, 13, 0)); others ("pypy3.10-7.3") sort first."""
    parts = name.split(".")
    return tuple(int(part) for part in parts) if all(part.isdigit() for part in parts) else (0,)


def find_python(minimum: tuple[int, int] = MINIMUM, preferred: tuple[int, int] = PREFERRED) -> str:
    """Return the path of the best interpreter: the preferred version if present, else the newest >= minimum."""
    versions: list[tuple[tuple[int, int], str]] = []
    for path in candidates():  # asked one at a time, until the preferred one answers (12 took 1.1 s here)
        version = _version(path)
        if version == preferred:
            return path
        if version is not None and version >= minimum:
            versions.append((version, path))
    if not versions:
        where = ", ".join(NAMES) + f" on PATH and {os.environ.get('PYENV_ROOT', '~/.pyenv')}/versions/*/bin/python3"
        raise NoSuitablePython(
            f"No Python >= {minimum[0]}.{minimum[1]} found (searched {where}); "
            f"install Python {preferred[0]}.{preferred[1]} and try again"
        )
    return max(versions)[1]


if __name__ == "__main__":
    try:
        print(find_python())
    except NoSuitablePython as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
