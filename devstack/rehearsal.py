"""``sam deploy`` rehearsed: the real SAM CLI deploys template.yaml into LocalStack on this host.

``Rehearsal`` (a ``Service``) is shared by ``make deploy-rehearsal`` (``scripts/deploy_rehearsal.py``)
and its reduced CI test. ``start()``:

1. starts the private dockerd (``DockerEngine``) and arm64 emulation, makes sure the offline Lambda
   runtime image exists (``lambda_image``, cached per machine);
2. starts Knot on loopback and on the docker bridge (the deployed functions' ``DnsServers``) with the
   scenario set's zones, and LocalStack (``localstack_server``) on loopback and the bridge.

Then the steps, each a method: ``operator_rule_set`` (the operator's set and delivery rule, active),
``deploy`` (README "Deploy"'s deploy block as written: ``sam build``; ``sam deploy`` with
samconfig.toml as shipped, its changeset prompt answered ``y``; the endpoint comes from the
environment, Knot's address and the scenario set's settings are appended to the overrides),
``run_block`` (any other README block), ``outputs``, ``seed``, ``invoke`` (the deployed function by
physical name), ``tenants`` (``ipv6gate tenants --stack``), ``rollback`` (README's roll-back block:
``sam delete``). ``stop()`` stops LocalStack, Knot and dockerd (its containers first).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from devstack import lambda_image, sam_template
from devstack.docker_engine import DockerEngine, EngineError, ensure_arm64_emulation, needs_emulation
from devstack.json_lines import json_records, log_records
from devstack.knot import KnotServer
from devstack.local_lambda import python313_dir
from devstack.localstack_server import LocalStackServer
from devstack.scenarios import Outcome, ScenarioSet, stored_messages
from devstack.service import Service

REPO = sam_template.REPO
STACK = "ipv6gate"  # samconfig.toml's stack_name
# The operator's own rule set and delivery rule, there before the first deploy.
OPERATOR_RULE_SET, OPERATOR_RULE = "operator-rules", "deliver-to-mailboxes"
OPERATOR_BUCKET = "operator-mailboxes"
# The operator's variable README "Deploy" uses besides RECIPIENTS (the scenario set's tenant domains).
REQUIRED = {"BOUNCE_SENDER": "mailer-daemon@bounces.example"}


def deploy_blocks(readme: Path = REPO / "README.md") -> dict[str, str]:
    """README "Deploy"'s ```sh blocks by what they do: deploy, outputs (watch), enforce, rollback, own_slot,
    redeploy (a later stack with the kept tenants table); each block has the first role whose marker it holds."""
    text = readme.read_text(encoding="utf-8")
    start = text.index("\n## Deploy\n")
    section = text[start : text.index("\n## ", start + 1)]
    roles = {
        "redeploy": "ExistingTenantsTable=",
        "deploy": "sam deploy",
        "outputs": "ipv6gate report",
        "enforce": "ipv6gate tenants enable",
        "rollback": "sam delete",
        "own_slot": "create-receipt-rule",
    }
    found: dict[str, str] = {}
    for block in re.findall(r"^( *)```sh\n(.*?)^ *```", section, re.S | re.M):
        body = textwrap.dedent(block[1])
        for role, marker in roles.items():
            if marker in body:
                found[role] = body
                break
    missing = sorted(set(roles) - set(found))
    if missing:
        raise EngineError(f"README.md Deploy: no ```sh block for {', '.join(missing)}")
    return found


def append_overrides(block: str, parameters: Mapping[str, str]) -> str:
    """``block`` with ``parameters`` added to the end of each ``sam deploy`` line (its overrides are last)."""
    extra = " ".join(shlex.quote(f"{k}={v}") for k, v in parameters.items())
    lines = block.splitlines()
    return "\n".join(f"{ln} {extra}" if extra and ln.lstrip().startswith("sam deploy ") else ln for ln in lines)


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
        self.shell: dict[str, str] = {}  # what the operator's shell exported so far (README blocks)
        self.pids: dict[str, int] = {}  # what start() started, checked by leftovers() after stop()

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self._timed("engine", self.engine.start)
            self.log(f"dockerd pid {self.engine.pid} on {self.engine.socket}")
            if self.arch == "arm64":
                self.log(ensure_arm64_emulation())
            self.timings["base_image"] = lambda_image.ensure_base_image(self.engine, self.arch, self.log)
            bridge = self.engine.bridge_ip()
            self.knot = KnotServer(self.scenarios.zones, also_listen=(bridge,)).start()
            self.localstack = LocalStackServer(
                docker_host=self.engine.host,
                bridge_ip=bridge,
                image=lambda_image.base_image_name(self.arch),
                arch=self.arch,
                timeout_scale=10 if needs_emulation(self.arch) else 1,
            )
            self._timed("localstack", self.localstack.start)
            self.pids = {"dockerd": self.engine.pid or 0, "LocalStack": self.localstack.pid or 0}
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

    def leftovers(self) -> list[str]:
        """After ``stop()``: what is still running or mounted of this rehearsal (nothing, when all is well)."""
        found = []
        for what, pid in self.pids.items():
            if Path(f"/proc/{pid}").exists():
                found.append(f"{what} pid {pid} still running")
        ours = (str(self.engine.state_dir), "ipv6gate-dockerd-")
        mounts = Path("/proc/mounts").read_text().splitlines()
        found += [f"mounted: {m.split()[1]}" for m in mounts if "/exec/" in m and any(o in m for o in ours)]
        return found

    def _timed(self, what: str, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = fn()
        self.timings[what] = round(time.monotonic() - started, 1)
        return result

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

    def run_block(
        self, block: str, *, variables: Mapping[str, str], parameters: Mapping[str, str] = {}, answers: str = ""
    ) -> str:
        """A README block as the operator pastes it into one shell (``set -e``), with their ``variables``;
        what it exports stays for the next block. The one change: ``parameters`` (the emulator's
        DNS, the scenario set's settings) are appended to each ``sam deploy`` line's overrides."""
        lines = append_overrides(block, parameters).splitlines()
        with tempfile.NamedTemporaryFile(prefix="rehearsal-env-") as exported:
            script = "set -euo pipefail\n" + "\n".join(lines) + f"\nenv -0 > {shlex.quote(exported.name)}\n"
            env = {**self.env(), **self.shell, **variables}
            proc = subprocess.run(
                ["bash", "-c", script],
                cwd=REPO,
                env=env,
                input=answers,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
                raise EngineError(
                    f"README block `{block.strip().splitlines()[0]} ...` exited {proc.returncode}: {tail}"
                )
            after = dict(entry.split("=", 1) for entry in Path(exported.name).read_text().split("\0") if "=" in entry)
        self.shell.update({k: v for k, v in after.items() if env.get(k) != v and not k.startswith(("_", "SHLVL"))})
        return proc.stdout

    # -- the steps ----------------------------------------------------------------------------------------

    def operator_rule_set(self) -> list[str]:
        """The operator's active rule set with one delivery rule (to their bucket), as before ipv6gate."""
        s3, ses = self.client("s3"), self.client("ses")
        options = (
            {} if self.region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
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

    def covered_domains(self) -> list[str]:
        """The rehearsal's ``Recipients``: the scenario set's tenant domains."""
        tenants = json.loads((self.scenarios.directory / "tenants.json").read_text(encoding="utf-8"))
        return sorted({str(t["domain"]) for t in tenants})

    def operator_variables(self, **more: str) -> dict[str, str]:
        """What README "Deploy" has the operator set before its blocks."""
        return {**REQUIRED, "RECIPIENTS": ",".join(self.covered_domains()), **more}

    def emulator_parameters(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Appended to README's deploy line: DNS is Knot on the docker bridge; the set's settings; ``extra``."""
        assert self.knot is not None and self.localstack is not None
        names = setting_parameters(sam_template.load_template())
        values = {"DnsServers": f"{self.localstack.bridge_ip}:{self.knot.port}"}
        values.update({names[k]: v for k, v in self.scenarios.environment.items()})
        values.update(extra or {})
        return values

    def deploy(self, extra: Mapping[str, str] | None = None, *, role: str = "deploy", key: str = "") -> str:
        """README's deploy block (``sam build``; ``sam deploy``, its prompt answered ``y``), or another of
        its ``sam deploy`` blocks (``role``, e.g. ``redeploy``); the stack's status. ``key``: its timing's name."""
        key = key or ("deploy" if "deploy" not in self.timings else "deploy_update")
        block = deploy_blocks()[role]
        parameters = self.emulator_parameters(extra)
        self._timed(
            key,
            lambda: self.run_block(block, variables=self.operator_variables(), parameters=parameters, answers="y\n"),
        )
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
        for message_id, raw in stored_messages(self.scenarios.directory).items():
            s3.put_object(Bucket=outputs["MessageBucketName"], Key=f"{prefix}{message_id}", Body=raw)
        return len(tenants)

    def invoke(self, function: str, name: str, event: Mapping[str, Any]) -> Invocation:
        """The deployed function (physical name or ARN), as SES invokes it: RequestResponse."""
        started = time.monotonic()
        answer = self.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode(), LogType="Tail")
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

    def rollback(self) -> str:
        """README's roll-back block: ``sam delete --no-prompts`` (the stack's drain empties the bucket)."""
        return str(self._timed("rollback", lambda: self.run_block(deploy_blocks()["rollback"], variables={})))

    def bucket_exists(self, bucket: str) -> bool:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError:
            return False
        return True

    def rule_set_exists(self, name: str) -> bool:
        ses = self.client("ses")
        try:
            ses.describe_receipt_rule_set(RuleSetName=name)
        except ses.exceptions.ClientError:
            return False
        return True

    def table_exists(self, name: str) -> bool:
        dynamodb = self.client("dynamodb")
        try:
            dynamodb.describe_table(TableName=name)
        except dynamodb.exceptions.ClientError:
            return False
        return True

    def stack_exists(self) -> bool:
        cloudformation = self.client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
        except cloudformation.exceptions.ClientError:
            return False
        return any(s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)


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
