"""``sam deploy`` rehearsed: the real SAM CLI deploys template.yaml into LocalStack on this host.

``Rehearsal`` (a ``Service``) is shared by ``make deploy-rehearsal`` (``scripts/deploy_rehearsal.py``)
and its reduced CI test. ``start()``:

1. starts the private dockerd (``DockerEngine``) and arm64 emulation, makes sure the offline Lambda
   runtime image exists (``lambda_image``, cached per machine);
2. starts Knot on loopback and on the docker bridge (the deployed functions' ``DnsServers``) with the
   scenario set's zones, and LocalStack (``localstack_server``) on loopback and the bridge.

Then the steps, each a method: ``operator_rule_set`` (the operator's set and delivery rule, active),
``build`` and ``deploy`` (``sam build``; ``sam deploy`` with samconfig.toml as shipped, answering
its changeset prompt; only the endpoint comes from the environment), ``outputs``, ``seed``,
``invoke`` (the deployed function by physical name), ``tenants`` (``ipv6gate tenants --stack``),
``delete`` (``sam delete``). ``stop()`` stops LocalStack, Knot and dockerd (its containers first).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from tests.support import lambda_image, sam_template
from tests.support.docker_engine import DockerEngine, EngineError, ensure_arm64_emulation, needs_emulation
from tests.support.json_lines import json_records, log_records
from tests.support.knot import KnotServer
from tests.support.local_lambda import python313_dir
from tests.support.localstack_server import LocalStackServer
from tests.support.scenarios import Outcome, ScenarioSet, stored_messages
from tests.support.service import Service

REPO = sam_template.REPO
STACK = "ipv6gate"  # samconfig.toml's stack_name
SAM = Path(sys.executable).parent / "sam"
# The operator's own rule set and delivery rule, there before the first deploy.
OPERATOR_RULE_SET, OPERATOR_RULE = "operator-rules", "deliver-to-mailboxes"
OPERATOR_BUCKET = "operator-mailboxes"
# Parameters every rehearsal deploy passes (no default in template.yaml); a scenario set adds its settings.
REQUIRED = {"BounceSender": "mailer-daemon@bounces.example"}


@dataclass(frozen=True)
class Invocation:
    """One invoke of a deployed function: its response, whether it raised, and the log lines it printed."""

    name: str
    response: Any
    function_error: str | None
    logs: str
    seconds: float

    def outcome(self) -> Outcome:
        records = json_records(self.logs)
        error = None
        if self.function_error:
            error = f"{self.function_error}: {json.dumps(self.response)[:300]}"
        return Outcome(self.name, self.response, log_records(records, "decision", prefix=True), error, records)


def setting_parameters(template: Mapping[str, Any], function: str = "GateFunction") -> dict[str, str]:
    """Setting name -> template parameter, from the function's ``Environment`` (``PTR_MODE: !Ref PtrMode``)."""
    variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
    globals_ = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    out: dict[str, str] = {}
    for name, value in {**globals_, **variables}.items():
        if isinstance(value, dict) and isinstance(value.get("Ref"), str) and value["Ref"] in template["Parameters"]:
            out[name] = value["Ref"]
    return out


class Rehearsal(Service):
    def __init__(
        self,
        scenarios: ScenarioSet,
        *,
        arch: str = "arm64",
        log: Callable[[str], None] = print,
    ) -> None:
        self.scenarios = scenarios
        self.arch = arch
        self.log = log
        self.region = scenarios.region
        self.engine = DockerEngine()
        self.knot: KnotServer | None = None
        self.localstack: LocalStackServer | None = None
        self.timings: dict[str, float] = {}

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self._timed("engine", self.engine.start)
            self.log(f"dockerd pid {self.engine.pid} on {self.engine.socket}")
            if self.arch == "arm64":
                self.log(ensure_arm64_emulation())
            self.timings["base_image"] = lambda_image.ensure_base_image(self.engine, self.arch, self.log)
            bridge = self.bridge_ip()
            self.knot = KnotServer(self.scenarios.zones, also_listen=(bridge,)).start()
            self.localstack = LocalStackServer(
                docker_host=self.engine.host,
                bridge_ip=bridge,
                image=lambda_image.base_image_name(self.arch),
                arch=self.arch,
                timeout_scale=10 if needs_emulation(self.arch) else 1,
            )
            self._timed("localstack", self.localstack.start)
            self.log(f"LocalStack on {self.localstack.endpoint_url} and {bridge}; Knot on {bridge}:{self.knot.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            if self.localstack is not None:
                self.localstack.stop()
        finally:
            try:
                if self.knot is not None:
                    self.knot.stop()
            finally:
                self.engine.stop()

    def _timed(self, what: str, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = fn()
        self.timings[what] = round(time.monotonic() - started, 1)
        return result

    def bridge_ip(self) -> str:
        """The docker bridge's gateway: the host as the function containers reach it."""
        client = self.engine.client()
        try:
            config = client.networks.get("bridge").attrs["IPAM"]["Config"]
        finally:
            client.close()
        gateway = next((c.get("Gateway") for c in config if c.get("Gateway")), None)
        if not gateway:
            raise EngineError("the docker bridge network has no gateway address")
        return str(gateway)

    # -- AWS, as the operator's tools reach it ------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self.localstack is None:
            raise EngineError("the rehearsal is not started")
        return self.localstack.endpoint_url

    def env(self) -> dict[str, str]:
        """What an operator's shell has (credentials, region), plus the emulator's endpoint."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_", "SAM_"))}
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "SAM_CLI_TELEMETRY": "0",
                "DOCKER_HOST": self.engine.host,
                # sam build runs the function runtime's Python; the venv's bin has sam and ipv6gate.
                "PATH": f"{python313_dir()}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            }
        )
        return env

    def client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        make: Any = boto3.client
        return make(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(read_timeout=900, retries={"max_attempts": 0}),
        )

    def run(self, cmd: list[str], *, answers: str = "", timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """A command as the operator types it (``answers``: what they type at its prompts)."""
        proc = subprocess.run(
            cmd, cwd=REPO, env=self.env(), input=answers, capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise EngineError(f"`{' '.join(cmd[:3])} ...` exited {proc.returncode}: {tail}")
        return proc

    # -- the steps ----------------------------------------------------------------------------------------

    def operator_rule_set(self) -> list[str]:
        """The operator's active rule set with one delivery rule (to their bucket), as before ipv6gate."""
        s3, ses = self.client("s3"), self.client("ses")
        options = {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        s3.create_bucket(Bucket=OPERATOR_BUCKET, **options)
        ses.create_receipt_rule_set(RuleSetName=OPERATOR_RULE_SET)
        rule = {"Name": OPERATOR_RULE, "Enabled": True, "Actions": [{"S3Action": {"BucketName": OPERATOR_BUCKET}}]}
        ses.create_receipt_rule(RuleSetName=OPERATOR_RULE_SET, Rule=rule)
        ses.set_active_receipt_rule_set(RuleSetName=OPERATOR_RULE_SET)
        return self.rule_order(OPERATOR_RULE_SET)

    def rule_order(self, rule_set: str) -> list[str]:
        return [r["Name"] for r in self.client("ses").describe_receipt_rule_set(RuleSetName=rule_set)["Rules"]]

    def active_rule_set(self) -> str | None:
        metadata = self.client("ses").describe_active_receipt_rule_set().get("Metadata") or {}
        name = metadata.get("Name")
        return str(name) if name else None

    def parameters(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The deploy's parameter overrides: required ones, DNS on the bridge, the set's settings, ``extra``."""
        assert self.knot is not None and self.localstack is not None
        template = sam_template.load_template()
        names = setting_parameters(template)
        tenants = json.loads((self.scenarios.directory / "tenants.json").read_text(encoding="utf-8"))
        values = {
            **REQUIRED,
            "Recipients": ",".join(sorted({str(t["domain"]) for t in tenants})),
            "DnsServers": f"{self.localstack.bridge_ip}:{self.knot.port}",
        }
        values.update({names[k]: v for k, v in self.scenarios.environment.items()})
        values.update(extra or {})
        return values

    def build(self) -> None:
        self._timed("sam_build", lambda: self.run([str(SAM), "build"]))

    def deploy(self, parameters: Mapping[str, str]) -> str:
        """``sam deploy`` as shipped (samconfig.toml: confirm the changeset, answered ``y``); the stack's status."""
        overrides = [f"{k}={v}" for k, v in parameters.items()]
        key = "sam_deploy" if "sam_deploy" not in self.timings else "sam_deploy_update"
        self._timed(key, lambda: self.run([str(SAM), "deploy", "--parameter-overrides", *overrides], answers="y\n"))
        status: str = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        return status

    def outputs(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def function_configuration(self, arn: str) -> dict[str, Any]:
        config: dict[str, Any] = self.client("lambda").get_function_configuration(FunctionName=arn)
        return config

    def seed(self, outputs: Mapping[str, str], prefix: str) -> int:
        """The set's tenants into the deployed table, its raw messages into the deployed bucket (as SES stores them)."""
        tenants = json.loads((self.scenarios.directory / "tenants.json").read_text(encoding="utf-8"))
        table = self.client("dynamodb")
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()
        for tenant in tenants:
            item = {k: serializer.serialize(v) for k, v in tenant.items()}
            table.put_item(TableName=outputs["TenantsTableName"], Item=item)
        s3 = self.client("s3")
        for message_id, raw in stored_messages(self.scenarios).items():
            s3.put_object(Bucket=outputs["MessageBucketName"], Key=f"{prefix}{message_id}", Body=raw)
        return len(tenants)

    def invoke(self, function: str, name: str, event: Mapping[str, Any]) -> Invocation:
        """The deployed function (physical name or ARN), as SES invokes it: RequestResponse."""
        started = time.monotonic()
        answer = self.client("lambda").invoke(
            FunctionName=function, Payload=json.dumps(event).encode(), LogType="Tail"
        )
        payload = answer["Payload"].read()
        try:
            response = json.loads(payload) if payload else None
        except ValueError:
            response = payload.decode(errors="replace")
        logs = base64.b64decode(answer.get("LogResult") or b"").decode(errors="replace")
        return Invocation(name, response, answer.get("FunctionError"), logs, time.monotonic() - started)

    def tenants(self, *args: str) -> str:
        """``ipv6gate tenants ... --stack ipv6gate``: the deployed table, found from the stack's outputs."""
        proc = self.run([str(Path(sys.executable).parent / "ipv6gate"), "tenants", *args, "--stack", STACK])
        return proc.stdout.strip()

    def queue_depth(self, queue_url: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def sent_bounces(self) -> list[dict[str, Any]]:
        assert self.localstack is not None
        path = self.localstack.bounce_log
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def delete(self) -> None:
        """``sam delete`` as the operator runs it (its two questions answered ``y``)."""
        self._timed("sam_delete", lambda: self.run([str(SAM), "delete", "--region", self.region], answers="y\ny\n"))

    def stack_exists(self) -> bool:
        cloudformation = self.client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
        except cloudformation.exceptions.ClientError:
            return False
        return any(s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)

    def function_containers(self) -> list[str]:
        client = self.engine.client()
        try:
            return [c.name for c in client.containers.list(all=True)]
        finally:
            client.close()


def fresh_event(event: Mapping[str, Any], message_id: str) -> dict[str, Any]:
    """``event`` received now under another message id (a bounce is sent only within 24 h of receipt)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    copy: dict[str, Any] = json.loads(json.dumps(event))
    ses = copy["Records"][0]["ses"]
    ses["mail"]["messageId"] = message_id
    ses["mail"]["timestamp"] = now
    ses["receipt"]["timestamp"] = now
    return copy
