from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from photopipe_infra import pythons


def fake_python(folder: Path, name: str, version: str) -> Path:
    """An executable that answers the version probe like a Python of ``version`` would."""
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {version.replace('.', ' ')}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    return tmp_path


def test_prefers_313_over_newer_and_older(isolated: Path) -> None:
    fake_python(isolated / "bin", "python3.12", "3.12")
    fake_python(isolated / "bin", "python3.14", "3.14")
    preferred = fake_python(isolated / "bin", "python3.13", "3.13")
    assert pythons.find_python() == os.path.realpath(preferred)


def test_finds_pyenv_versions_when_path_has_only_an_old_python(isolated: Path) -> None:
    fake_python(isolated / "bin", "python3", "3.11")
    version_bin = isolated / "pyenv" / "versions" / "3.12.1" / "bin"
    version_bin.mkdir(parents=True)
    found = fake_python(version_bin, "python3", "3.12")
    assert pythons.find_python() == os.path.realpath(found)


def test_no_suitable_python_names_what_was_searched(isolated: Path) -> None:
    fake_python(isolated / "bin", "python3", "3.11")
    with pytest.raises(pythons.NoSuitablePython) as error:
        pythons.find_python()
    message = str(error.value)
    assert "3.12" in message
    assert "python3.13" in message
    assert str(isolated / "pyenv") in message


def test_the_search_stops_at_the_first_preferred_interpreter(isolated: Path) -> None:
    preferred = fake_python(isolated / "bin", "python3.13", "3.13")
    version_bin = isolated / "pyenv" / "versions" / "3.9.18" / "bin"
    version_bin.mkdir(parents=True)
    asked = isolated / "asked"
    later = version_bin / "python3"
    later.write_text(f"#!/bin/sh\n: > {asked}\necho 3 9\n")  # a builtin: PATH holds only the fakes
    later.chmod(later.stat().st_mode | stat.S_IEXEC)
    assert pythons.find_python() == os.path.realpath(preferred)
    assert not asked.exists()  # each interpreter asked costs a start (a pyenv shim's, a tenth of a second)


def test_pyenv_versions_are_asked_newest_first_and_its_shims_not_at_all(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shims = isolated / "pyenv" / "shims"
    shims.mkdir(parents=True)
    fake_python(shims, "python3.13", "3.13")
    for release in ("3.9.18", "3.12.1", "3.13.0", "3.10.13"):
        folder = isolated / "pyenv" / "versions" / release / "bin"
        folder.mkdir(parents=True)
        fake_python(folder, "python3", release.rsplit(".", 1)[0])
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    order = [Path(path).parent.parent.name for path in pythons.candidates()]
    assert order == ["3.13.0", "3.12.1", "3.10.13", "3.9.18"]
    assert pythons.find_python() == os.path.realpath(isolated / "pyenv" / "versions" / "3.13.0" / "bin" / "python3")
