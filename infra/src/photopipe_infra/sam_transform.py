"""template.yaml as CloudFormation sees it after the SAM transform (aws-sam-translator, offline), for the checks that
read deployed resources: the least-privilege test, cfn-lint and checkov.

    python -m photopipe_infra.sam_transform [template.yaml] > transformed.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "template.yaml"

# `sam build` uploads each code folder and writes its S3 location in place of the folder; the transform needs one.
_BUILT = "s3://photopipe-artifacts/{}.zip"
_CODE_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


class _PolicyNames:
    """The translator asks IAM for the ARNs of AWS-managed policies it attaches (tracing's); they are well known."""

    def load(self) -> dict[str, str]:
        names = ("AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess", "AWSLambdaBasicExecutionRole")
        return {name: f"arn:aws:iam::aws:policy/{name}" for name in names}


def sam_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The SAM template with each code folder replaced by an S3 location, as `sam build`/`sam package` leave it
    (the state machine's definition is read in, as `sam package` inlines nothing but the transform needs it)."""
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 - a dev dependency, only for these checks

    template: dict[str, Any] = yaml_parse(path.read_text())
    for name, resource in template["Resources"].items():
        prop = _CODE_PROPERTIES.get(resource["Type"])
        if prop is None or prop not in resource.get("Properties", {}):
            continue
        if prop == "DefinitionUri":
            definition_path = path.parent / resource["Properties"].pop(prop)
            resource["Properties"]["Definition"] = json.loads(definition_path.read_text())
        else:
            resource["Properties"][prop] = _BUILT.format(name)
    return template


def transformed(path: Path = TEMPLATE) -> dict[str, Any]:
    """The CloudFormation template the SAM transform makes of ``path`` (parameters at their defaults)."""
    from samtranslator.translator.transform import transform  # noqa: PLC0415 - a dev dependency

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator names the partition from it
    # Metadata passes through: the checkov suppressions written on a SAM resource reach what it becomes.
    result: dict[str, Any] = transform(sam_template(path), {}, _PolicyNames(), passthrough_metadata=True)
    return result


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    json.dump(transformed(path), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
