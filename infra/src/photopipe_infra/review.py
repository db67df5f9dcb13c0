"""The template's review: cfn-lint (info checks included) on template.yaml and on what the SAM transform makes of it,
and checkov on the transformed template. Every finding left is a failure; a finding the design accepts is suppressed
in the resource's Metadata with its reason (``checkov: skip: [{id, comment}]``, ``cfn-lint: config: ignore_checks``).

    python -m photopipe_infra.review        (make lint; tests/integration/test_template_review.py)
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from photopipe_infra import venvs
from photopipe_infra.paths import state_dir
from photopipe_infra.sam_transform import TEMPLATE, transformed


@dataclass(frozen=True)
class Review:
    findings: list[str]
    suppressed: int  # checkov checks skipped by the template's own Metadata


def unexplained_suppressions(template: Path = TEMPLATE) -> list[str]:
    """checkov skips in the template's Metadata that give no reason (a reviewer reads each one)."""
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 - a dev dependency

    found = []
    for name, resource in yaml_parse(template.read_text())["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            if len(str(skip.get("comment", "")).split()) < 4:
                found.append(f"{name}: checkov skip {skip.get('id')} needs a reason a reviewer would accept")
    return found


def review(template: Path = TEMPLATE) -> Review:
    tools = venvs.ensure(venvs.REVIEW)
    folder = state_dir() / "review"
    folder.mkdir(parents=True, exist_ok=True)
    cloudformation = folder / "template.json"
    cloudformation.write_text(json.dumps(transformed(template), indent=1))

    lint = subprocess.run(  # noqa: S603 - our own venv's tool on our own files
        [
            str(tools.bin("cfn-lint")),
            "--include-checks",
            "I",
            "--format",
            "parseable",
            "--",
            str(template),
            str(cloudformation),
        ],
        env=venvs.tool_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    findings = [line for line in lint.stdout.splitlines() if line.strip()]
    findings += unexplained_suppressions(template)
    if lint.returncode and not findings:
        findings.append(f"cfn-lint failed: {lint.stderr.strip()[-2000:]}")

    checkov = subprocess.run(  # noqa: S603
        [
            str(tools.bin("checkov")),
            "--file",
            str(cloudformation),
            "--framework",
            "cloudformation",
            "--quiet",
            "--output",
            "json",
            "--skip-download",
        ],
        env=venvs.tool_environment(),
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    try:
        report = json.loads(checkov.stdout)
    except json.JSONDecodeError:
        return Review([*findings, f"checkov failed: {checkov.stderr.strip()[-2000:]}"], 0)
    results = report.get("results", {}) if isinstance(report, dict) else {}
    for failed in results.get("failed_checks", []):
        findings.append(f"checkov {failed['check_id']} {failed['resource']}: {failed['check_name']}")
    summary = report.get("summary", {}) if isinstance(report, dict) else {}
    if summary.get("failed", 0) and not results.get("failed_checks"):
        findings.append(f"checkov: {summary['failed']} failed check(s) it did not list")
    return Review(findings, int(summary.get("skipped", 0)))


def main() -> None:
    result = review(Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE)
    for finding in result.findings:
        print(finding)
    print(
        f"template review: {len(result.findings)} finding(s); {result.suppressed} checkov check(s) suppressed "
        "with a reason in the template"
    )
    sys.exit(1 if result.findings else 0)


if __name__ == "__main__":
    main()
