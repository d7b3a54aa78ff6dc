"""A deployed stack's outputs (CloudFormation ``DescribeStacks``): the CLI's ``--stack NAME``."""

from __future__ import annotations

from typing import Any


class StackOutputError(LookupError):
    """The stack or its output cannot be found or read; ``missing`` tells a wrong name from an AWS failure."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def stack_output(client: Any, stack: str, key: str) -> str:
    """The value of output ``key`` of ``stack`` (a name or stack id)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ValidationError" and "does not exist" in str(error.get("Message", "")):
            raise StackOutputError(f"stack {stack}: no such stack in this account and region", missing=True) from exc
        raise StackOutputError(f"stack {stack}: cannot be read ({error.get('Code', 'error')})", missing=False) from exc
    except BotoCoreError as exc:
        raise StackOutputError(f"stack {stack}: cannot be read ({exc})", missing=False) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for s in stacks[:1] for o in s.get("Outputs") or []}
    if key not in outputs:
        raise StackOutputError(
            f"stack {stack}: has no output {key} (not an ipv6gate stack, or not fully deployed)", missing=True
        )
    return str(outputs[key])
