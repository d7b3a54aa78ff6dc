"""Run the SAM template's function the way ``sam local invoke`` does, against moto server and Knot.

Used by ``scripts/demo.py`` and ``tests/integration/test_handler_events.py``:

- ``load_template`` reads ``template.yaml`` with a YAML loader that understands CloudFormation's
  short tags (``!Ref``, ``!Sub``, ``!If``, ...), turning them into their long ``Fn::`` forms.
- ``Intrinsics`` resolves ``Ref``/``Fn::Sub``/``Fn::If``/``Fn::GetAtt``/... for local use: a
  parameter is its ``Default``, a table or bucket is its local name (``resource_names``).
- ``function_spec`` gives a function's CodeUri, Handler, layer ContentUris and resolved environment.
- ``LocalStack`` starts moto server and Knot (serving a zone directory) and creates the template's
  DynamoDB tables and S3 buckets with the template's key schemas.
- ``invoke`` imports the handler module in a fresh Python process, with the code and layer
  directories first on ``sys.path`` and the environment SAM would give the container, and calls
  the handler once per event (a cold start, then warm invocations), capturing what each call
  printed: Powertools' JSON log lines and EMF metric blobs.

Only the standard library is imported at module level: the worker process imports this module
before the handler, and must not preload anything the function's cold start would load itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from tests.support.json_lines import json_records, log_records
from tests.support.service import Service

if TYPE_CHECKING:
    from tests.support.knot import KnotServer
    from tests.support.moto_server import MotoServer

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS_DIR = REPO / "events"
ZONES_DIR = EVENTS_DIR / "zones"
NOT_EVENTS = frozenset({"env.json", "expected.json", "tenants.json", "settings.json"})
GATE_FUNCTION = "GateFunction"
STACK_NAME = "ipv6gate-local"
REGION = "eu-west-1"  # the moto harness's region, and the one the demo events were received in
ACCOUNT_ID = "123456789012"  # what `sam local invoke` reports as AWS_ACCOUNT_ID

LOCAL_RESOURCE_TYPES = ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue")
_NAME_PROPERTY = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName", "AWS::SQS::Queue": "QueueName"}


class TemplateError(ValueError):
    """The template uses something this local runner cannot resolve; the message says what."""


# -- template loading ---------------------------------------------------------------------------------


def _cfn_loader() -> type[Any]:
    import yaml

    class CfnLoader(yaml.SafeLoader):
        """SafeLoader plus CloudFormation's short-form tags."""

    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        elif isinstance(node, yaml.MappingNode):
            value = loader.construct_mapping(node, deep=True)
        else:  # pragma: no cover - yaml has no other node kinds
            raise TemplateError(f"unexpected YAML node for !{suffix}")
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    CfnLoader.add_multi_constructor("!", construct)
    return CfnLoader


def load_template(path: str | Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data; short tags become ``{"Ref": ...}`` / ``{"Fn::Sub": ...}``."""
    import yaml

    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_cfn_loader())
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return data


def local_name(logical_id: str, stack_name: str = STACK_NAME) -> str:
    """A stable, S3- and DynamoDB-safe name for a resource the template leaves unnamed."""
    kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", logical_id).lower()
    return f"{stack_name}-{kebab}"[:63]


def resource_names(template: Mapping[str, Any], stack_name: str = STACK_NAME) -> dict[str, str]:
    """Logical id -> physical name for the tables and buckets (explicit name, else ``local_name``)."""
    plain = Intrinsics(template, names={}, stack_name=stack_name)
    names: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type")
        if kind not in _NAME_PROPERTY:
            continue
        explicit = (resource.get("Properties") or {}).get(_NAME_PROPERTY[kind])
        names[logical_id] = str(plain.resolve(explicit)) if explicit is not None else local_name(logical_id, stack_name)
    return names


def explicitly_named(template: Mapping[str, Any]) -> set[str]:
    resources = template["Resources"]
    return {
        logical_id
        for logical_id, r in resources.items()
        if r.get("Type") in _NAME_PROPERTY and _NAME_PROPERTY[r["Type"]] in (r.get("Properties") or {})
    }


# -- intrinsic functions ----------------------------------------------------------------------------------


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class Intrinsics:
    """Resolves CloudFormation intrinsics the way a local run needs them."""

    def __init__(
        self,
        template: Mapping[str, Any],
        names: Mapping[str, str],
        *,
        parameters: Mapping[str, str] | None = None,
        region: str = REGION,
        account_id: str = ACCOUNT_ID,
        stack_name: str = STACK_NAME,
    ) -> None:
        self.template = template
        self.names = dict(names)
        self.parameters = dict(parameters or {})
        self.pseudo: dict[str, Any] = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
            "AWS::NoValue": NO_VALUE,
        }

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Condition":
                return self.condition(str(arg))
            if key.startswith("Fn::"):
                return self._function(key[4:], arg)
        return {k: r for k, r in ((k, self.resolve(v)) for k, v in value.items()) if r is not NO_VALUE}

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        params = self.template.get("Parameters") or {}
        if name in params:
            spec = params[name]
            if name in self.parameters:
                raw: Any = self.parameters[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                raise TemplateError(f"parameter {name} has no Default: pass it as a parameter override")
            if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")):
                return [item.strip() for item in str(raw).split(",")] if not isinstance(raw, list) else raw
            return str(raw) if not isinstance(raw, bool) else str(raw).lower()
        resource = (self.template.get("Resources") or {}).get(name)
        if resource is not None and resource.get("Type") == "AWS::SQS::Queue":
            # !Ref of a queue is its URL; moto reads the queue name from the path.
            queue = self.names.get(name) or local_name(name, self.pseudo["AWS::StackName"])
            return f"https://sqs.{self.pseudo['AWS::Region']}.amazonaws.com/{self.pseudo['AWS::AccountId']}/{queue}"
        if name in self.names:
            return self.names[name]
        if resource is not None:
            return local_name(name, self.pseudo["AWS::StackName"])
        raise TemplateError(f"!Ref {name}: neither a parameter, a pseudo parameter nor a resource")

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = (self.template.get("Resources") or {}).get(logical_id)
        if resource is None:
            raise TemplateError(f"!GetAtt {logical_id}.{attribute}: no such resource")
        kind, name = resource.get("Type"), self.ref(logical_id)
        region, account = self.pseudo["AWS::Region"], self.pseudo["AWS::AccountId"]
        arns = {
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{str(name).rsplit('/', 1)[-1]}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{region}:{account}:function:{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{name}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if kind == "AWS::S3::Bucket" and attribute in ("DomainName", "RegionalDomainName"):
            return f"{name}.s3.{region}.amazonaws.com"
        raise TemplateError(f"!GetAtt {logical_id}.{attribute}: not supported locally")

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise TemplateError(f"condition {name} is not defined")
        return bool(self.resolve(conditions[name]))

    def _function(self, fn: str, arg: Any) -> Any:
        if fn == "GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(str(logical_id), str(self.resolve(attribute)))
        if fn == "Sub":
            return self._sub(arg)
        if fn == "If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(name)) else when_false)
        if fn == "Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if fn == "Not":
            return not self.resolve(arg[0])
        if fn == "And":
            return all(self.resolve(a) for a in arg)
        if fn == "Or":
            return any(self.resolve(a) for a in arg)
        if fn == "Join":
            delimiter, items = arg
            return str(delimiter).join(str(i) for i in self.resolve(items))
        if fn == "Split":
            delimiter, text = arg
            return str(self.resolve(text)).split(str(delimiter))
        if fn == "Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        raise TemplateError(f"Fn::{fn} is not supported locally")

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in local:
                return str(local[expr])
            if "." in expr and not expr.startswith("AWS::"):
                logical_id, attribute = expr.split(".", 1)
                return self.get_att(logical_id, attribute)
            return str(self.ref(expr))

        return _SUB_VAR.sub(replace, str(text))


# -- functions ----------------------------------------------------------------------------------------------


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
    resources = template["Resources"]
    resource = resources.get(logical_id)
    if resource is None or resource.get("Type") not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        raise TemplateError(f"{logical_id} is not a function in the template")
    names = resource_names(template) if names is None else names
    intrinsics = Intrinsics(template, names, parameters=parameters, region=region)
    defaults = ((template.get("Globals") or {}).get("Function")) or {}
    props = {**defaults, **(resource.get("Properties") or {})}
    variables = {
        **((defaults.get("Environment") or {}).get("Variables") or {}),
        **(((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}),
    }
    environment: dict[str, str] = {}
    for name, raw in variables.items():
        value = intrinsics.resolve(raw)
        if value is not NO_VALUE:
            environment[name] = _stringify(value)
    layers: list[Path] = []
    for layer in props.get("Layers") or []:
        ref = layer.get("Ref") if isinstance(layer, dict) else None
        target = resources.get(ref) if isinstance(ref, str) else None
        if target is None or target.get("Type") not in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            raise TemplateError(f"{logical_id}: layer {layer!r} is not a layer of this template")
        layer_props = target.get("Properties") or {}
        content = layer_props.get("ContentUri") or (layer_props.get("Content") or {}).get("S3Key")
        layers.append((base_dir / str(content)).resolve())
    handler = str(intrinsics.resolve(props.get("Handler")))
    code_uri = (base_dir / str(intrinsics.resolve(props.get("CodeUri", ".")))).resolve()
    return FunctionSpec(
        logical_id=logical_id,
        code_uri=code_uri,
        handler=handler,
        layers=tuple(layers),
        runtime=str(props.get("Runtime", "")),
        memory_mb=int(props.get("MemorySize", 128)),
        timeout_s=int(props.get("Timeout", 3)),
        environment=environment,
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


# -- the local stack ------------------------------------------------------------------------------------------


def _typed(value: Any) -> dict[str, Any]:
    """A plain JSON value as a DynamoDB attribute value (lists of strings become string sets)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return {"SS": list(value)}
    if isinstance(value, list):
        return {"L": [_typed(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: _typed(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {value!r} in DynamoDB")


class LocalStack(Service):
    """moto server + Knot serving ``zone_dir``, with the template's tables and buckets created.

    ``zone_dir=None``: moto only (DNS answered otherwise, e.g. from zone files with DNS_ZONE_DIR).
    """

    def __init__(
        self,
        zone_dir: str | Path | None = ZONES_DIR,
        template: Mapping[str, Any] | None = None,
        *,
        region: str = REGION,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.zone_dir = Path(zone_dir) if zone_dir is not None else None
        self.template: Mapping[str, Any] = template if template is not None else load_template()
        self.region = region
        self.names = resource_names(self.template)
        self.created: dict[str, str] = {}  # logical id -> physical name
        self._log = log or (lambda _text: None)
        self._moto: MotoServer | None = None
        self._knot: KnotServer | None = None

    @property
    def moto(self) -> MotoServer:
        if self._moto is None:
            raise RuntimeError("LocalStack is not running")
        return self._moto

    @property
    def knot(self) -> KnotServer:
        if self._knot is None:
            raise RuntimeError("LocalStack is not running")
        return self._knot

    def start(self) -> Self:
        from tests.support.knot import KnotServer
        from tests.support.moto_server import MotoServer

        try:
            self._moto = MotoServer().start()
            self._log(f"moto server on {self._moto.endpoint_url}")
            if self.zone_dir is not None:
                self._knot = KnotServer(self.zone_dir).start()
                zones = ", ".join(z.to_text(omit_final_dot=True) for z in self._knot.zones)
                self._log(f"knotd on {self._knot.servers_env} serving {zones}")
            self._create_resources()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        knot, self._knot = self._knot, None
        moto, self._moto = self._moto, None
        try:
            if knot is not None:
                knot.stop()
        finally:
            if moto is not None:
                moto.stop()

    def overrides(self) -> dict[str, str]:
        """What replaces the template's values in a local run: the local endpoints."""
        from tests.support.moto_server import aws_env

        env = aws_env(self.moto.endpoint_url)
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.region
        return {**env, "DNS_SERVERS": self.knot.servers_env} if self._knot is not None else env

    def client(self, service: str) -> Any:
        import boto3

        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=self.region
        )
        make: Any = session.client
        return make(service, endpoint_url=self.moto.endpoint_url)

    def _create_resources(self) -> None:
        intrinsics = Intrinsics(self.template, self.names, region=self.region)
        for logical_id, resource in self.template["Resources"].items():
            kind = resource.get("Type")
            if kind not in LOCAL_RESOURCE_TYPES:
                continue
            if "Condition" in resource and not intrinsics.condition(str(resource["Condition"])):
                continue
            props = intrinsics.resolve(resource.get("Properties") or {})
            name = self.names[logical_id]
            if kind == "AWS::DynamoDB::Table":
                self._create_table(name, props)
            elif kind == "AWS::SQS::Queue":
                self.client("sqs").create_queue(QueueName=name)
            else:
                self._create_bucket(name)
            self.created[logical_id] = name
            how = "explicit name" if logical_id in explicitly_named(self.template) else "no name in template: local"
            self._log(f"{kind} {logical_id} -> {name} ({how})")

    def _create_table(self, name: str, props: Mapping[str, Any]) -> None:
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in props:
                request[key] = props[key]
        ddb = self.client("dynamodb")
        ddb.create_table(**request)
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    def _create_bucket(self, name: str) -> None:
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})

    def put_items(self, table: str, items: Sequence[Mapping[str, Any]]) -> None:
        ddb = self.client("dynamodb")
        for item in items:
            ddb.put_item(TableName=table, Item={k: _typed(v) for k, v in item.items()})

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


# -- the demo data in events/ -------------------------------------------------------------------------------------


def event_files(events_dir: Path = EVENTS_DIR) -> list[str]:
    """Every SES event file in ``events_dir`` (``*.json`` except env/expected/tenants), sorted."""
    return sorted(p.name for p in events_dir.glob("*.json") if p.name not in NOT_EVENTS)


def load_event(name: str, events_dir: Path = EVENTS_DIR) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((events_dir / name).read_text(encoding="utf-8"))
    return data


def message_id_of(event: Mapping[str, Any]) -> str:
    return str(event["Records"][0]["ses"]["mail"]["messageId"])


def stored_messages(events_dir: Path = EVENTS_DIR) -> dict[str, bytes]:
    """messageId -> raw message, for every ``<stem>.eml`` next to a ``<stem>.json`` event."""
    out: dict[str, bytes] = {}
    for eml in sorted(events_dir.glob("*.eml")):
        event_path = eml.with_suffix(".json")
        if not event_path.exists():
            raise FileNotFoundError(f"{eml.name} has no {event_path.name} to take the messageId from")
        out[message_id_of(load_event(event_path.name, events_dir))] = eml.read_bytes()
    return out


def seed_demo(stack: LocalStack, environment: Mapping[str, str], events_dir: Path = EVENTS_DIR) -> list[str]:
    """Put the demo tenants and every stored message where the function will look (its env)."""
    table, bucket = environment.get("TENANTS_TABLE", ""), environment.get("MESSAGE_BUCKET", "")
    prefix = environment.get("MESSAGE_PREFIX", "")
    if not table or not bucket:
        raise TemplateError("the function's environment has no TENANTS_TABLE / MESSAGE_BUCKET")
    tenants = json.loads((events_dir / "tenants.json").read_text(encoding="utf-8"))
    stack.put_items(table, tenants)
    done = [f"{len(tenants)} tenants -> dynamodb://{table}"]
    for message_id, raw in stored_messages(events_dir).items():
        stack.put_object(bucket, f"{prefix}{message_id}", raw)
        done.append(f"{len(raw)} bytes -> s3://{bucket}/{prefix}{message_id}")
    return done


# -- invocation ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One call of the handler and everything it printed."""

    name: str
    result: Any
    error: str | None
    stdout: str
    stderr: str
    duration_ms: float

    def records(self) -> list[dict[str, Any]]:
        """The JSON objects printed on stdout, one per line (Powertools logs and EMF blobs)."""
        return json_records(self.stdout)

    def logs(self, message: str | None = None) -> list[dict[str, Any]]:
        """Structured log lines (those with a ``level``), optionally only those with ``message``."""
        return log_records(self.records(), message)

    def emf(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if isinstance(r.get("_aws"), dict)]

    def metrics(self) -> dict[str, float]:
        """Metric name -> sum of its values over every EMF blob of this invocation."""
        totals: dict[str, float] = {}
        for blob in self.emf():
            for directive in blob["_aws"].get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    name = metric["Name"]
                    raw = blob.get(name, 0)
                    totals[name] = totals.get(name, 0.0) + float(sum(raw) if isinstance(raw, list) else raw)
        return totals

    def metric_namespaces(self) -> set[str]:
        return {d.get("Namespace", "") for b in self.emf() for d in b["_aws"].get("CloudWatchMetrics", [])}


@dataclass(frozen=True)
class Run:
    """A container's life: its init (module import) and the invocations that followed."""

    init_stdout: str
    init_stderr: str
    init_error: str | None
    init_ms: float
    invocations: list[Invocation] = field(default_factory=list)

    def by_name(self) -> dict[str, Invocation]:
        return {i.name: i for i in self.invocations}


def invoke(
    spec: FunctionSpec,
    environment: Mapping[str, str],
    events: Sequence[tuple[str, Any]],
    *,
    timeout: float | None = None,
) -> Run:
    """Import ``spec.handler`` in a fresh process and call it with each event in turn.

    The first call follows the cold start (module-level code runs on import, Powertools records a
    cold start); the others are warm, as in one Lambda container. ``sam local invoke`` itself
    starts a container per event: pass a single event for exactly that.
    """
    request = {
        "sys_path": [str(spec.code_uri), *(str(p) for p in spec.layers)],
        "handler": spec.handler,
        "function_name": spec.logical_id,
        "memory_mb": spec.memory_mb,
        "timeout_s": spec.timeout_s,
        "region": environment.get("AWS_REGION", REGION),
        "events": [{"name": name, "event": event} for name, event in events],
    }
    limit = timeout if timeout is not None else 60.0 + spec.timeout_s * max(1, len(events))
    with tempfile.TemporaryDirectory(prefix="sam-local-") as tmp:
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        env = {
            **environment,
            "PYTHONPATH": str(REPO),  # only to import the worker; it takes REPO off sys.path again
            "PYTHONDONTWRITEBYTECODE": "1",
            "_SAM_LOCAL_REPO": str(REPO),
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from tests.support.sam_local import worker_main; sys.exit(worker_main(sys.argv[1:]))",
                str(request_path),
                str(result_path),
            ],
            cwd=spec.code_uri,
            env=env,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
        )
        if not result_path.exists():
            raise RuntimeError(
                f"the local Lambda worker died (exit {proc.returncode}):\n{proc.stderr[-4000:]}{proc.stdout[-2000:]}"
            )
        data = json.loads(result_path.read_text(encoding="utf-8"))
    return Run(
        init_stdout=data["init"]["stdout"],
        init_stderr=data["init"]["stderr"],
        init_error=data["init"]["error"],
        init_ms=data["init"]["duration_ms"],
        invocations=[Invocation(**item) for item in data["invocations"]],
    )


# -- the worker (runs in the fresh process) ------------------------------------------------------------------------


@dataclass
class LocalLambdaContext:
    """A stand-in for the runtime's ``LambdaContext`` with the attributes Powertools reads."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_s: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "$LATEST"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_s - time.monotonic()) * 1000))


@dataclass
class _Captured:
    stdout: str = ""
    stderr: str = ""


@contextlib.contextmanager
def _capture_fds() -> Iterator[_Captured]:
    """Capture file descriptors 1 and 2 (so also loggers that hold on to ``sys.stdout``)."""
    captured = _Captured()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            out.seek(0)
            err.seek(0)
            captured.stdout = out.read().decode("utf-8", "replace")
            captured.stderr = err.read().decode("utf-8", "replace")


def worker_main(argv: Sequence[str]) -> int:
    """Entry point of the fresh process ``invoke`` starts: import the handler, call it per event."""
    import importlib

    request_path, result_path = argv
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    # sys.path as in the Lambda runtime: the function's code, then the layers; not the repo root.
    repo = os.environ.pop("_SAM_LOCAL_REPO", "")
    os.environ.pop("PYTHONPATH", None)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.path[:] = [*request["sys_path"], *(p for p in sys.path if p not in ("", repo, os.getcwd()))]
    module_name, _, attribute = str(request["handler"]).rpartition(".")

    result: dict[str, Any] = {"init": {}, "invocations": []}
    handler: Any = None
    started = time.perf_counter()
    with _capture_fds() as init:
        try:
            handler = getattr(importlib.import_module(module_name), attribute)
            init_error = None
        except BaseException:
            init_error = traceback.format_exc()
    result["init"] = {
        "stdout": init.stdout,
        "stderr": init.stderr,
        "error": init_error,
        "duration_ms": (time.perf_counter() - started) * 1000,
    }
    arn = f"arn:aws:lambda:{request['region']}:{ACCOUNT_ID}:function:{request['function_name']}"
    for item in request["events"]:
        context = LocalLambdaContext(
            function_name=request["function_name"],
            memory_limit_in_mb=int(request["memory_mb"]),
            invoked_function_arn=arn,
            aws_request_id=str(uuid.uuid4()),
            timeout_s=int(request["timeout_s"]),
            log_group_name=f"aws/lambda/{request['function_name']}",
        )
        value: Any = None
        error: str | None = None
        started = time.perf_counter()
        with _capture_fds() as out:
            if handler is None:
                error = "init failed: the handler could not be imported"
            else:
                try:
                    value = handler(item["event"], context)
                except Exception:
                    error = traceback.format_exc()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            error, value = error or f"handler returned a value that is not JSON: {value!r}", None
        result["invocations"].append(
            {
                "name": item["name"],
                "result": value,
                "error": error,
                "stdout": out.stdout,
                "stderr": out.stderr,
                "duration_ms": (time.perf_counter() - started) * 1000,
            }
        )
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")
    return 0
