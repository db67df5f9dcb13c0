"""Every LocalStack hook photopipe_infra defines is registered as an entry point (a hook left out of
infra/pyproject.toml is never run: LocalStack finds hooks through their entry points only)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"
HOOKS = ("on_infra_start", "on_infra_ready", "on_infra_shutdown")


def defined_hooks() -> dict[str, set[str]]:
    """``{hook kind: {"module:function", …}}`` of the functions decorated ``@hooks.<kind>()`` in photopipe_infra."""
    found: dict[str, set[str]] = {kind: set() for kind in HOOKS}
    for path in sorted((INFRA / "src" / "photopipe_infra").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Attribute) and call.attr in HOOKS:
                    found[call.attr].add(f"photopipe_infra.{path.stem}:{node.name}")
    return found


def test_every_hook_is_an_entry_point() -> None:
    entry_points = tomllib.loads((INFRA / "pyproject.toml").read_text())["project"]["entry-points"]
    defined = defined_hooks()
    assert defined["on_infra_start"], "the hooks were not found where they are looked for"
    for kind in HOOKS:
        registered = set(entry_points.get(f"localstack.hooks.{kind}", {}).values())
        assert defined[kind] <= registered, f"{kind} hooks not registered: {sorted(defined[kind] - registered)}"
