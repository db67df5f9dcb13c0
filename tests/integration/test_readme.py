"""Every ```bash block of the README, pasted in order into one shell against the live stack, must work.

Blocks fenced ```sh are the set-up commands (make demo, make test, make up/down …) that manage the stack rather than
talk to it; they are run by CI and by `make demo` itself, not here. The blocks run in a scratch folder (with the
project venv linked in as .venv) so the tour's files do not land in the repository, against the test stack's port.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from photopipe.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def bash_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_the_readme_has_a_tour_with_the_flows_the_issue_names() -> None:
    text = "\n".join(bash_blocks())
    for needed in (
        'curl -s -X POST "$API/v1/uploads"',
        "curl -s -X PUT",
        "photopipe upload",
        "aws s3 cp",
        "--recursive",
    ):
        assert needed in text


def test_every_bash_block_in_the_readme_works_against_the_stack(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = "\n".join(f"echo '>>> block {i}'\n{block}" for i, block in enumerate(bash_blocks(), start=1))
    script = script.replace("http://localhost:4566", stack.settings.endpoint_url)

    result = subprocess.run(  # noqa: S603 - the README's own commands
        ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path), "TERM": "dumb"},
    )

    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "PUT 200" in result.stdout
    assert "thumb.webp: RIFF" in result.stdout and "Web/P image" in result.stdout
    assert '"status": "READY"' in result.stdout  # the curl flow's final answer
    # the webhook receiver's own check: the signed delivery taken, the forged one refused
    assert re.search(r"^Media Ready [0-9A-Z]{26} version 1$", result.stdout, re.MULTILINE), result.stdout[-4000:]
    assert "a forged delivery: HTTP 401" in result.stdout and "refused: bad signature" in result.stdout
