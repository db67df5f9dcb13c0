"""The tool venvs photopipe keeps in its state folder, created on demand and reused while their inputs match.

- ``localstack``: localstack-core 4.14.0 with LocalStack's own pins, plus this package's plugins. It has
  moto-ext (which installs the module ``moto``), so it never shares a venv with the project.
- ``lambda-python``: the clean interpreter that runs Lambda handlers: only what the AWS runtime has (boto3).
- ``sam``: the AWS SAM CLI, apart because its pins are its own.
- ``review``: checkov and cfn-lint, the template's reviewers (``make lint`` and a test), apart for the same reason.

They are made with uv when the running Python has it beside it (the project venv does: ``make`` installs it first),
several at once (``ensure_all``): a first ``photopipe up`` waited about two minutes for pip to install them one after
the other. Each venv is seeded with pip all the same (``sam build`` runs ``python -m pip`` of the SAM venv's
interpreter). Without uv, pip does the same, one venv at a time.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from photopipe_infra.paths import INFRA_DIR, state_dir
from photopipe_infra.pythons import find_python

LOG = logging.getLogger(__name__)

STAMP = ".photopipe-stamp"
LOCALSTACK_VERSION = "4.14.0"


@dataclass(frozen=True)
class VenvSpec:
    name: str
    requirements: tuple[str, ...]
    inputs: tuple[Path, ...]
    editable: Path | None = None

    @property
    def path(self) -> Path:
        return state_dir() / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def fingerprint(self) -> str:
        """What the venv is made from: its requirements, then (after a '+') the editable package's metadata."""
        digest = hashlib.sha256()
        for item in self.requirements:
            digest.update(item.encode())
        for path in self.inputs:
            digest.update(path.read_bytes())
        if self.editable is None:
            return digest.hexdigest()
        metadata = hashlib.sha256((self.editable / "pyproject.toml").read_bytes()).hexdigest()
        return f"{digest.hexdigest()}+{metadata}"


LOCALSTACK = VenvSpec(
    name="localstack-venv",
    requirements=(
        f"localstack-core[runtime]=={LOCALSTACK_VERSION}",
        "-c",
        str(INFRA_DIR / "constraints" / f"localstack-{LOCALSTACK_VERSION}.txt"),
    ),
    inputs=(INFRA_DIR / "constraints" / f"localstack-{LOCALSTACK_VERSION}.txt",),
    editable=INFRA_DIR,
)
LAMBDA_PYTHON = VenvSpec(
    name="lambda-python",
    requirements=("-r", str(INFRA_DIR / "requirements" / "lambda-runtime.txt")),
    inputs=(INFRA_DIR / "requirements" / "lambda-runtime.txt",),
)
SAM = VenvSpec(
    name="sam-venv",
    requirements=("-r", str(INFRA_DIR / "requirements" / "sam.txt")),
    inputs=(INFRA_DIR / "requirements" / "sam.txt",),
)
REVIEW = VenvSpec(
    name="review-venv",
    requirements=("-r", str(INFRA_DIR / "requirements" / "review.txt")),
    inputs=(INFRA_DIR / "requirements" / "review.txt",),
)


def tool_environment(caller: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a tool run from one of these venvs: the caller's, without its Python settings.

    The tools are Python programs with interpreters of their own, so the caller's ``PYTHONPATH`` and the like are
    not theirs. ``PYTHONDONTWRITEBYTECODE`` above all: with it, the SAM CLI compiled its 2,000-odd modules from
    source on every run (about 4 s of each ``sam build`` and ``sam deploy`` on a small machine); without it, the
    first run keeps them in the venv, which is ours, for every later one."""
    return {
        key: value for key, value in (os.environ if caller is None else caller).items() if not key.startswith("PYTHON")
    }


def is_current(spec: VenvSpec) -> bool:
    return _stamp(spec) == spec.fingerprint()


def _stamp(spec: VenvSpec) -> str | None:
    stamp = spec.path / STAMP
    return stamp.read_text() if spec.python.exists() and stamp.exists() else None


def uv() -> str | None:
    """The uv beside the running interpreter (the project venv's), else on PATH; None: use pip."""
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def _install(spec: VenvSpec, *arguments: str) -> None:
    """Install into the venv with uv, from its cache when that holds everything asked for, else with pip.

    uv asks the index whether each cached package is still current: for LocalStack's 113 packages that took
    5 of the 6.6 s of an install whose every wheel was in the cache (1.4 s offline). A first install, or one
    that needs a package the cache lacks, fails offline at once and goes to the index."""
    fast = uv()
    if fast is None:
        pip = [str(spec.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, *arguments], check=True)  # noqa: S603
        return
    install = [fast, "pip", "install", "--quiet", "--python", str(spec.python)]
    if subprocess.run([*install, "--offline", *arguments], check=False, capture_output=True).returncode == 0:  # noqa: S603
        return
    subprocess.run([*install, *arguments], check=True)  # noqa: S603


def _create(spec: VenvSpec) -> None:
    fast = uv()
    if fast is not None:
        make = [fast, "venv", "--quiet", "--seed", "--python", find_python(), str(spec.path)]
        # pip, the seed, from uv's cache as the packages are (0.06 s instead of 0.5 s)
        if subprocess.run([*make, "--offline"], check=False, capture_output=True).returncode != 0:  # noqa: S603
            shutil.rmtree(spec.path, ignore_errors=True)
            subprocess.run(make, check=True)  # noqa: S603
    else:
        subprocess.run([find_python(), "-m", "venv", str(spec.path)], check=True)  # noqa: S603


# One lock per venv: `photopipe up` builds with the SAM venv while LocalStack's start ensures it too.
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def ensure(spec: VenvSpec) -> VenvSpec:
    """Create or refresh the venv when its requirements changed; a no-op (a file read) when it is current.
    Threads that ensure the same venv at once wait for the first, which makes it.

    When only the editable package's own metadata changed (a new plugin entry point in its pyproject.toml), it is
    installed again on its own: the pinned requirements stay as they are (a fresh LocalStack venv takes minutes)."""
    if is_current(spec):
        return spec
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(spec.name, threading.Lock())
    with lock:
        if not is_current(spec):
            _make(spec)
    return spec


def _make(spec: VenvSpec) -> None:
    stamp = _stamp(spec)
    if (
        spec.editable is not None
        and stamp is not None
        and stamp.partition("+")[0] == spec.fingerprint().partition("+")[0]
    ):
        LOG.info("Installing %s again into %s ...", spec.editable.name, spec.path)
        _install(spec, "--no-deps", "-e", str(spec.editable))
        (spec.path / STAMP).write_text(spec.fingerprint())
        return
    LOG.info("Preparing %s (one-time set-up) ...", spec.path)
    if spec.path.exists():
        shutil.rmtree(spec.path)
    _create(spec)
    _install(spec, *spec.requirements)
    if spec.editable is not None:
        _install(spec, "--no-deps", "-e", str(spec.editable))
    (spec.path / STAMP).write_text(spec.fingerprint())


def ensure_all(*specs: VenvSpec) -> None:
    """``ensure`` these venvs at the same time (with pip, one after the other: its caches are not shared safely)."""
    missing = [spec for spec in specs if not is_current(spec)]
    if uv() is None or len(missing) < 2:  # noqa: PLR2004
        for spec in missing:
            ensure(spec)
        return
    with ThreadPoolExecutor(max_workers=len(missing)) as pool:
        for future in [pool.submit(ensure, spec) for spec in missing]:
            future.result()
