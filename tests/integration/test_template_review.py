"""The template a security reviewer signs: cfn-lint (info checks too) and checkov find nothing that is not
suppressed in the template with its reason (the same review `make lint` runs)."""

from __future__ import annotations

from pathlib import Path

from photopipe_infra.review import review, unexplained_suppressions


def test_cfn_lint_and_checkov_find_nothing_unsuppressed() -> None:
    result = review()
    assert result.findings == []
    assert result.suppressed > 0  # checkov ran and read the template's suppressions


def test_the_review_fails_on_a_finding_nobody_suppressed(tmp_path: Path) -> None:
    # A queue without encryption and without a reason: checkov flags it
    template = Path(__file__).resolve().parents[2] / "template.yaml"
    text = template.read_text()
    bare = text.replace(
        "Resources:\n",
        "Resources:\n  PlainQueue:\n    Type: AWS::SQS::Queue\n    DeletionPolicy: Delete\n"
        "    UpdateReplacePolicy: Delete\n    Properties:\n      MessageRetentionPeriod: 60\n\n",
        1,
    )
    (tmp_path / "statemachine").mkdir()
    (tmp_path / "statemachine" / "pipeline.asl.json").write_text(
        (template.parent / "statemachine" / "pipeline.asl.json").read_text()
    )
    changed = tmp_path / "template.yaml"
    changed.write_text(bare)
    assert any("CKV_AWS_27" in finding and "PlainQueue" in finding for finding in review(changed).findings)


def test_a_suppression_without_a_reason_is_a_finding(tmp_path: Path) -> None:
    template = Path(__file__).resolve().parents[2] / "template.yaml"
    text = template.read_text().replace(
        'comment: "encrypted with SSE-SQS (SqsManagedSseEnabled), like IngestQueue"', 'comment: "ok"', 1
    )
    changed = tmp_path / "template.yaml"
    changed.write_text(text)
    assert unexplained_suppressions(changed) == [
        "IngestDLQ: checkov skip CKV_AWS_27 needs a reason a reviewer would accept"
    ]
