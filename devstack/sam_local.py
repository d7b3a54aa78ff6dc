"""Run a function of template.yaml the way ``sam local invoke`` does, against moto server and Knot.

Used by ``make demo`` (``scripts/demo.py``), the handler tests, the load test and the benchmarks;
``devstack/sam_template.py`` says what the function is and which environment it gets.

- ``LocalStack`` starts moto server and Knot (serving a zone directory) and creates the template's
  DynamoDB tables (with their key schemas), S3 buckets and SQS queues, under their local names.
- ``seed_demo`` puts a scenario set's tenants and stored messages where the function will look.
- ``invoke`` runs the handler in a fresh Python process (``devstack/lambda_worker.py``) with the
  code and layer directories first on ``sys.path`` and the environment SAM would give the container,
  and calls it once per event (a cold start, then warm invocations), capturing what each call
  printed: Powertools' JSON log lines and EMF metric blobs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from devstack import sam_template
from devstack.json_lines import json_records, log_records
from devstack.sam_template import ACCOUNT_ID, NAME_PROPERTY, REGION, REPO, FunctionSpec, TemplateError
from devstack.scenarios import NOT_EVENTS
from devstack.service import Service

if TYPE_CHECKING:
    from devstack.knot import KnotServer
    from devstack.moto_server import MotoServer

EVENTS_DIR = REPO / "events"
ZONES_DIR = EVENTS_DIR / "zones"


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
    """moto server + Knot serving ``zone_dir``, with the template's tables, buckets and queues created.

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
        self.template: Mapping[str, Any] = template if template is not None else sam_template.load_template()
        self.region = region
        self.names = sam_template.resource_names(self.template)
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
        from devstack.knot import KnotServer
        from devstack.moto_server import MotoServer

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
        from devstack.moto_server import aws_env

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
        symbols = sam_template.symbols(self.template, self.names, region=self.region)
        for logical_id, resource in self.template["Resources"].items():
            kind = resource.get("Type")
            if kind not in NAME_PROPERTY:
                continue
            condition = resource.get("Condition")  # SAM CLI's resolver evaluates a named condition in Fn::If
            if condition and not sam_template.resolve(self.template, {"Fn::If": [condition, True, False]}, symbols):
                continue
            name = self.names[logical_id]
            props = resource.get("Properties") or {}
            if kind == "AWS::DynamoDB::Table":
                self._create_table(name, sam_template.resolve(self.template, props, symbols))
            elif kind == "AWS::SQS::Queue":
                self.client("sqs").create_queue(QueueName=name)
            else:
                self._create_bucket(name)
            how = "explicit name" if NAME_PROPERTY[kind] in props else "no name in template: local"
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
    region = environment.get("AWS_REGION", REGION)
    request = {
        "sys_path": [str(spec.code_uri), *(str(p) for p in spec.layers)],
        "handler": spec.handler,
        "function_name": spec.logical_id,
        "function_arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{spec.logical_id}",
        "memory_mb": spec.memory_mb,
        "timeout_s": spec.timeout_s,
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
                "import sys; from devstack.lambda_worker import main; sys.exit(main(sys.argv[1:]))",
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
