"""template.yaml's functions as ``sam local invoke`` resolves them, with local names for their resources.

The libraries do the work: cfn-lint's decoder reads the template (short tags such as ``!Ref``
become their long ``Fn::`` forms), and SAM CLI's own function provider
(``samcli.lib.providers.sam_function_provider``: the SAM translator's plugins apply ``Globals``,
``samcli.lib.intrinsic_resolver`` resolves ``Ref``/``Fn::Sub``/``Fn::If``/...) gives a function's
CodeUri, Handler, layers and environment. This module adds only what a local run decides itself:

- the symbols SAM resolves against (``symbols``): parameters at their defaults unless overridden,
  the region and pseudo parameters of the local stack, and a local name per table, bucket and
  queue (``resource_names``; ``!Ref`` of a queue is its URL);
- the process environment of the container (``container_environment``).

cfn-lint and SAM CLI take about a second to import, so they are imported only where a template is
read or resolved: most users of the test support (events, the Lambda worker) never do.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.scenarios import ScenarioSet

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
GATE_FUNCTION = "GateFunction"
STACK_NAME = "ipv6gate-local"
REGION = "eu-west-1"  # the moto harness's region, and the one the demo events were received in
ACCOUNT_ID = "123456789012"  # what `sam local invoke` reports as AWS_ACCOUNT_ID

# The resources a local stack creates, and the property that names each explicitly.
NAME_PROPERTY = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName", "AWS::SQS::Queue": "QueueName"}
# Stands for a parameter that has neither a Default nor an override, so that using it fails (SAM CLI
# would silently put the parameter's name in its place).
_UNSET = "\x00unset:{}\x00"
_UNSET_FOUND = re.compile("\x00unset:([^\x00]*)\x00")


class TemplateError(ValueError):
    """The template uses something this local runner cannot resolve; the message says what."""


def load_template(path: str | Path = TEMPLATE) -> dict[str, Any]:
    """The template (YAML or JSON) as dicts and lists; short tags become ``{"Ref": ...}``, ``{"Fn::Sub": ...}``."""
    from cfnlint.decode import decode_str

    data, problems = decode_str(Path(path).read_text(encoding="utf-8"))
    if problems:
        raise TemplateError(f"{path}: " + "; ".join(str(p) for p in problems))
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return data


def local_name(logical_id: str, stack_name: str = STACK_NAME) -> str:
    """A stable, S3- and DynamoDB-safe name for a resource the template leaves unnamed."""
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", logical_id).lower()
    return f"{stack_name}-{kebab}"[:63]


def symbols(
    template: Mapping[str, Any],
    names: Mapping[str, str] | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    region: str = REGION,
    stack_name: str = STACK_NAME,
) -> dict[str, Any]:
    """What ``Ref`` resolves to locally: SAM CLI's ``logical_id_translator`` (its parameter overrides)."""
    table: dict[str, Any] = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/local",
    }
    for name, spec in (template.get("Parameters") or {}).items():
        table[name] = spec["Default"] if "Default" in spec else _UNSET.format(name)
    table.update(parameters or {})
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        if kind in NAME_PROPERTY:
            name = (names or {}).get(logical_id) or local_name(logical_id, stack_name)
            # !Ref of a queue is its URL; moto reads the queue name from the path.
            sqs = f"https://sqs.{region}.amazonaws.com/{ACCOUNT_ID}/{name}"
            table[logical_id] = sqs if kind == "AWS::SQS::Queue" else name
    return table


def resolve(template: Mapping[str, Any], value: Any, table: Mapping[str, Any]) -> Any:
    """``value`` with its intrinsics resolved by SAM CLI against ``table`` (see ``symbols``)."""
    from samcli.lib.intrinsic_resolver.intrinsic_property_resolver import IntrinsicResolver
    from samcli.lib.intrinsic_resolver.intrinsics_symbol_table import IntrinsicsSymbolTable
    from samcli.lib.intrinsic_resolver.invalid_intrinsic_exception import (
        InvalidIntrinsicException,
        InvalidSymbolException,
    )

    resolver = IntrinsicResolver(
        template=template, symbol_resolver=IntrinsicsSymbolTable(logical_id_translator=dict(table), template=template)
    )
    try:
        resolved = resolver.intrinsic_property_resolver(value, ignore_errors=False)
    except (InvalidIntrinsicException, InvalidSymbolException) as exc:
        raise TemplateError(f"cannot resolve {value!r} locally: {exc}") from exc
    _check_set(resolved)
    return resolved


def _check_set(value: Any) -> None:
    """Fail if ``value`` uses a parameter that has neither a Default nor an override."""
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            _check_set(item)
    elif isinstance(value, str) and (found := _UNSET_FOUND.search(value)):
        raise TemplateError(f"parameter {found.group(1)} has no Default: pass it as a parameter override")


def resource_names(template: Mapping[str, Any], stack_name: str = STACK_NAME) -> dict[str, str]:
    """Logical id -> physical name for the tables, buckets and queues (explicit name, else ``local_name``)."""
    table = symbols(template, stack_name=stack_name)
    names: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        if kind in NAME_PROPERTY:
            explicit = (resource.get("Properties") or {}).get(NAME_PROPERTY[kind])
            named = explicit is not None
            names[logical_id] = str(resolve(template, explicit, table)) if named else local_name(logical_id, stack_name)
    return names


@dataclass(frozen=True)
class FunctionSpec:
    """What ``sam local invoke <logical_id>`` needs to know about a function."""

    logical_id: str
    code_uri: Path
    handler: str  # "module.attribute"
    layers: tuple[Path, ...]  # each layer's ContentUri (sam build would put it under /opt/python)
    runtime: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]  # the template's variables, resolved


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def function_spec(
    template: Mapping[str, Any],
    logical_id: str = GATE_FUNCTION,
    *,
    names: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
    base_dir: Path = REPO,
    region: str = REGION,
) -> FunctionSpec:
    """The function as SAM CLI's provider sees it, resolved against the local ``symbols``."""
    from samcli.commands.validate.lib.exceptions import InvalidSamDocumentException
    from samcli.lib.providers.provider import Stack
    from samcli.lib.providers.sam_function_provider import SamFunctionProvider

    resource = template["Resources"].get(logical_id)
    if resource is None or resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        raise TemplateError(f"{logical_id} is not a function in the template")
    names = resource_names(template) if names is None else names
    table = symbols(template, names, parameters=parameters, region=region)
    stack = Stack("", "", str(base_dir / "template.yaml"), table, dict(template))
    try:
        function = SamFunctionProvider([stack], ignore_code_extraction_warnings=True).get(logical_id)
    except InvalidSamDocumentException as exc:
        raise TemplateError(f"{logical_id}: {exc}") from exc
    variables = (function.environment or {}).get("Variables") or {}
    unresolved = sorted(name for name, value in variables.items() if isinstance(value, dict))
    if unresolved:
        raise TemplateError(f"{logical_id}: cannot resolve {', '.join(unresolved)} locally")
    _check_set(variables)
    layers: list[Path] = []
    for layer in function.layers:
        if layer.codeuri is None:
            raise TemplateError(f"{logical_id}: layer {layer.name!r} is not a layer of this template")
        layers.append(Path(layer.codeuri).resolve())
    return FunctionSpec(
        logical_id=logical_id,
        code_uri=(base_dir / (function.codeuri or ".")).resolve(),
        handler=str(function.handler),
        layers=tuple(layers),
        runtime=str(function.runtime or ""),
        memory_mb=int(function.memory or 128),
        timeout_s=int(function.timeout or 3),
        # AWS::NoValue leaves a variable out, as CloudFormation does.
        environment={name: _stringify(value) for name, value in variables.items() if value is not None},
    )


def container_environment(
    spec: FunctionSpec, overrides: Mapping[str, str], *, region: str = REGION, home: str | None = None
) -> dict[str, str]:
    """The environment ``sam local invoke`` gives the container, with ``overrides`` applied last.

    SAM's own AWS_* and Lambda variables, then the template's (resolved) variables, then the local
    values (endpoints of the local stack). Nothing of the caller's environment leaks in, except PATH.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home or tempfile.gettempdir(),  # never the developer's ~/.aws
        "LANG": "en_US.UTF-8",
        "TZ": "UTC",
        "LAMBDA_TASK_ROOT": str(spec.code_uri),
        "LAMBDA_RUNTIME_DIR": str(Path(sys.executable).parent),
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
        "AWS_LAMBDA_FUNCTION_HANDLER": spec.handler,
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"aws/lambda/{spec.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ACCOUNT_ID": ACCOUNT_ID,
    }
    return {**env, **spec.environment, **overrides}


def function_and_scenarios(
    directory: Path, function: str = GATE_FUNCTION
) -> tuple[dict[str, Any], FunctionSpec, ScenarioSet]:
    """The template, ``function`` as it runs in the scenario set's region, and the set itself.

    Shared by ``make demo``, ``make smtp-demo`` and ``make sandbox``; raises ``TemplateError`` or
    ``ScenarioError`` (one line each).
    """
    from devstack.scenarios import load_scenarios

    template = load_template()
    chosen = load_scenarios(directory, sorted(function_spec(template, function).environment))
    return template, function_spec(template, function, region=chosen.region), chosen
