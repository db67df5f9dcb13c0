"""Where the checkout and its state folder are."""

from __future__ import annotations

import os
from pathlib import Path

# infra/src/photopipe_infra/paths.py → the checkout root is three folders up from this package.
PROJECT_ROOT = Path(os.environ.get("PHOTOPIPE_PROJECT_ROOT") or Path(__file__).resolve().parents[3])
INFRA_DIR = PROJECT_ROOT / "infra"


def state_dir() -> Path:
    """The git-ignored folder for venvs, LocalStack's files, logs and PID file (``PHOTOPIPE_STATE_DIR`` moves it)."""
    path = Path(os.environ.get("PHOTOPIPE_STATE_DIR") or PROJECT_ROOT / ".state")
    path.mkdir(parents=True, exist_ok=True)
    return path
