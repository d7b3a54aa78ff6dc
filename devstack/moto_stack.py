"""The template's stack in moto server, with Knot for DNS: what a local run of a function talks to.

``MotoStack`` starts moto server and Knot (serving a zone directory) and creates ``template.yaml``'s
DynamoDB tables (with their key schemas), S3 buckets and SQS queues there, under their local names
(``sam_template.resource_names``); ``seed`` puts a scenario set's tenants and stored messages where
a function with the given environment will look. Used by ``make demo``, ``sandbox``, ``smtp-demo``,
``local`` (``local_lambda``), the load test, the benchmarks and the tests.

Both servers listen on loopback; ``bind`` moves moto server to another address of this host and adds
it to Knot's, e.g. the docker bridge's gateway, where SAM CLI's function containers reach the host.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from devstack import sam_template
from devstack.sam_template import NAME_PROPERTY, REGION, TemplateError
from devstack.scenarios import EVENTS_DIR, stored_messages
from devstack.service import Service
from ipv6gate.aws.items import wire

if TYPE_CHECKING:
    from devstack.knot import KnotServer
    from devstack.moto_server import MotoServer

ZONES_DIR = EVENTS_DIR / "zones"
LOOPBACK = "127.0.0.1"


def _storable(value: Any) -> Any:
    """A JSON value as boto3's serializer takes it: a list of strings is a string set, a float a Decimal."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return set(value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, float):
        return Decimal(str(value))
    return value


class MotoStack(Service):
    """moto server + Knot serving ``zone_dir``, with the template's tables, buckets and queues created.

    ``zone_dir=None``: moto only (DNS answered otherwise, e.g. from zone files with DNS_ZONE_DIR).
    """

    def __init__(
        self,
        zone_dir: str | Path | None = ZONES_DIR,
        template: Mapping[str, Any] | None = None,
        *,
        region: str = REGION,
        bind: str = LOOPBACK,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.zone_dir = Path(zone_dir) if zone_dir is not None else None
        self.template: Mapping[str, Any] = template if template is not None else sam_template.load_template()
        self.region = region
        self.bind = bind
        self.names = sam_template.resource_names(self.template)
        self._log = log or (lambda _text: None)
        self._moto: MotoServer | None = None
        self._knot: KnotServer | None = None

    @property
    def moto(self) -> MotoServer:
        if self._moto is None:
            raise RuntimeError("the moto stack is not running")
        return self._moto

    @property
    def knot(self) -> KnotServer:
        if self._knot is None:
            raise RuntimeError("the moto stack is not running")
        return self._knot

    @property
    def dns_servers(self) -> str:
        """``DNS_SERVERS`` for a process that reaches this host at ``bind``."""
        return f"{self.bind}:{self.knot.port}"

    def start(self) -> Self:
        from devstack.knot import KnotServer
        from devstack.moto_server import MotoServer

        try:
            self._moto = MotoServer(host=self.bind).start()
            self._log(f"moto server on {self._moto.endpoint_url}")
            if self.zone_dir is not None:
                also = () if self.bind == LOOPBACK else (self.bind,)
                self._knot = KnotServer(self.zone_dir, also_listen=also).start()
                zones = ", ".join(z.to_text(omit_final_dot=True) for z in self._knot.zones)
                self._log(f"knotd on {self._knot.servers_env}{f' and {self.bind}' if also else ''} serving {zones}")
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
        """What replaces the template's values in a local run on this host: the local endpoints."""
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
                create_table(self.client("dynamodb"), name, sam_template.resolve(self.template, props, symbols))
            elif kind == "AWS::SQS::Queue":
                self.client("sqs").create_queue(QueueName=name)
            else:
                self._create_bucket(name)
            how = "explicit name" if NAME_PROPERTY[kind] in props else "no name in template: local"
            self._log(f"{kind} {logical_id} -> {name} ({how})")

    def _create_bucket(self, name: str) -> None:
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})

    def put_items(self, table: str, items: Sequence[Mapping[str, Any]]) -> None:
        ddb = self.client("dynamodb")
        for item in items:
            ddb.put_item(TableName=table, Item=wire(_storable(dict(item))))

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    def seed(self, environment: Mapping[str, str], directory: Path = EVENTS_DIR) -> list[str]:
        """A scenario set's tenants and every stored message, where ``environment``'s function looks."""
        table, bucket = environment.get("TENANTS_TABLE", ""), environment.get("MESSAGE_BUCKET", "")
        prefix = environment.get("MESSAGE_PREFIX", "")
        if not table or not bucket:
            raise TemplateError("the function's environment has no TENANTS_TABLE / MESSAGE_BUCKET")
        tenants = json.loads((directory / "tenants.json").read_text(encoding="utf-8"))
        self.put_items(table, tenants)
        done = [f"{len(tenants)} tenants -> dynamodb://{table}"]
        for message_id, raw in stored_messages(directory).items():
            self.put_object(bucket, f"{prefix}{message_id}", raw)
            done.append(f"{len(raw)} bytes -> s3://{bucket}/{prefix}{message_id}")
        return done


def create_table(ddb: Any, name: str, props: Mapping[str, Any]) -> None:
    """A table as the template's (resolved) ``AWS::DynamoDB::Table`` properties define it, TTL included."""
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
    ddb.create_table(**request)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)


def create_template_table(ddb: Any, logical_id: str, name: str, template: Mapping[str, Any] | None = None) -> None:
    """The template's table ``logical_id`` created under ``name`` (tests with moto in process)."""
    template = template if template is not None else sam_template.load_template()
    resource = template["Resources"].get(logical_id) or {}
    if resource.get("Type") != "AWS::DynamoDB::Table":
        raise TemplateError(f"{logical_id} is not a table in the template")
    table = sam_template.symbols(template)
    create_table(ddb, name, sam_template.resolve(template, resource.get("Properties") or {}, table))
