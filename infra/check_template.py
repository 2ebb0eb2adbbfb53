"""Check template.yaml offline, as AWS would see it after `sam build`.

1. Transform it with aws-sam-translator (the SAM transform CloudFormation runs),
   with placeholder code locations, and write ``build/template.transformed.json``.
2. Run cfn-lint on the transformed template, which checks what the SAM schema
   alone does not (runtimes, generated roles, event source mappings).

CI then runs checkov on the transformed template. Needs no AWS access.

    python infra/check_template.py
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "template.transformed.json"


class _NoManagedPolicies:
    """The translator asks for AWS managed policies only if a template names one; ours do not."""

    def load(self) -> dict[str, str]:
        return {}


def transformed(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template after the SAM transform, with local code locations replaced."""
    from samtranslator.translator.transform import transform  # noqa: PLC0415

    from pipeline.local import template as cfn  # noqa: PLC0415

    document = copy.deepcopy(template or cfn.load(ROOT / "template.yaml"))
    for resource in document["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://placeholder-artifacts/handlers.zip"
    result: dict[str, Any] = transform(document, {}, _NoManagedPolicies())
    return result


def main() -> None:
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(transformed(), indent=2))
    print(f"SAM transform: ok ({OUT.relative_to(ROOT)})")
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    lint = subprocess.run([str(cfn_lint), str(OUT)], check=False)
    if lint.returncode:
        sys.exit(f"cfn-lint on the transformed template failed ({lint.returncode})")
    print("cfn-lint on the transformed template: ok")


if __name__ == "__main__":
    main()
