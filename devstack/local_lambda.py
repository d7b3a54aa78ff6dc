"""The built artifact in the local Lambda container: ``sam build``, then each event through warm containers.

``LocalLambda`` is what ``make local`` and its CI test share. ``start()``:

1. starts a private dockerd (``docker_engine.DockerEngine``), registers arm64 emulation if needed;
2. builds the offline Lambda base image unless cached (``lambda_image.ensure_base_image``);
3. ``sam build``s ``template.yaml`` as it is deployed (arm64, the layer from PyPI wheels, byte code for
   python3.13: the layer's and the functions' Makefiles);
4. starts moto server and Knot on the docker bridge's gateway, where the function containers reach
   this host (Knot also on loopback; the scenario set's ``zones/`` plus the zones the bouncer's cases
   need, ``BOUNCER_ZONES``), creates the template's tables, bucket and queues there, and seeds the
   tenants and raw messages (``moto_stack.MotoStack``);
5. derives a local-only image from the base that adds ``AWS_ENDPOINT_URL`` (moto);
6. (``warm=True``, the default) starts ``sam local start-lambda --warm-containers EAGER`` on the
   built template (``start_lambda.StartLambda``): one container per function for the whole run.

``invoke()`` calls the function through that endpoint (boto3's ``lambda`` client), or with
``warm=False`` runs ``sam local invoke <function> -e <event>`` (a fresh container per event), with
``--env-vars <file> --region <region> --skip-pull-image --invoke-image <that image>`` either way (SAM
CLI as released: its containers on the default bridge, their emulator port published on loopback),
and returns the response, the function's log lines and the ``REPORT`` line.
``template.yaml`` is not changed: the env-vars file sets only variables the template declares
(``DNS_SERVERS``, the local table, bucket and queue names); the AWS endpoint comes from the image.
``stop()`` stops all of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from devstack import lambda_image, sam_template
from devstack.docker_engine import STATE_DIR, DockerEngine, EngineError, ensure_arm64_emulation, needs_emulation
from devstack.json_lines import json_records, log_records, metric_totals
from devstack.moto_stack import MotoStack
from devstack.scenarios import Outcome, ScenarioError, ScenarioSet
from devstack.service import Service
from devstack.start_lambda import StartLambda, tail

REPO = sam_template.REPO
GATE, BOUNCER = "GateFunction", "BouncerFunction"
SAM_CLI = [sys.executable, "-m", "samcli"]  # the venv's SAM CLI, unchanged
DEFAULT_BUILD_DIR = STATE_DIR / "build"  # not .aws-sam/build: the scaled timeouts below stay local
# Parameters without a default in template.yaml (sam local invoke needs a value for each).
PARAMETERS = {"BounceSender": "mailer-daemon@bounces.example", "Recipients": "example.com"}
# With SAM_CLI_RIE_DEV=1 the emulator logs its phases; its REPORT line folds an on-demand init into
# Duration (and prints a ~1 ms "Init Duration"), so the init and the handler's time come from these.
_INIT_REPORT = re.compile(r"INIT REPORT\(durationMs: (?P<ms>[\d.]+)\)")
_INVOKE_DONE = re.compile(r"INVOKE RTDONE\(status: \w+, produced bytes: \d+, duration: (?P<ms>[\d.]+)ms\)")
_REPORT = re.compile(
    r"REPORT RequestId: \S+\s+(?:Init Duration: (?P<init>[\d.]+) ms\s+)?Duration: (?P<duration>[\d.]+) ms"
    r".*?Memory Size: (?P<memory>\d+) MB(?:\s+Max Memory Used: (?P<used>\d+) MB)?"
)

# Under arm64 emulation (environment()): the most DECISION_BUDGET_SECONDS allows.
EMULATED_DECISION_BUDGET = "25"


@dataclass(frozen=True)
class Report:
    """One invocation's times: init (Lambda's Init Duration) and the handler's Duration."""

    init_ms: float | None
    duration_ms: float
    memory_mb: int
    max_memory_used_mb: int | None


@dataclass(frozen=True)
class LocalInvoke:
    """One ``sam local invoke``: its exit code, the response (stdout) and the container's output."""

    name: str
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def response(self) -> Any:
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        if not lines:
            return None
        try:
            return json.loads(lines[-1])
        except ValueError:
            return None

    def records(self) -> list[dict[str, Any]]:
        """Every JSON object the function printed (Powertools log lines, EMF blobs), in order."""
        return json_records(self.stderr)

    def logs(self, message: str | None = None) -> list[dict[str, Any]]:
        return log_records(self.records(), message, prefix=True)

    def metrics(self) -> dict[str, float]:
        return metric_totals(self.records())

    @property
    def report(self) -> Report | None:
        reports = reports_in(self.stderr)
        return reports[0] if reports else None

    @property
    def error(self) -> str | None:
        """Why this invocation failed: SAM CLI's exit code, no response, or the handler's errorType."""
        if self.exit_code != 0:
            return f"sam local invoke exited {self.exit_code}: {tail(self.stderr)}"
        response = self.response
        if response is None:
            return f"no JSON response from sam local invoke: {tail(self.stdout + self.stderr)}"
        if isinstance(response, dict) and "errorType" in response:
            return f"{response['errorType']}: {response.get('errorMessage', '')}"
        return None

    def outcome(self) -> Outcome:
        """For the scenario table (the gate's decision line)."""
        return Outcome(self.name, self.response, self.logs("decision"), self.error, self.records())


def python313_dir() -> Path:
    """Directory of a Python 3.13 (``sam build`` without containers runs the runtime's Python)."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    if sys.version_info[:2] == (3, 13) and base.name.startswith("python3"):
        return base.resolve().parent
    found = subprocess.run([str(REPO / "scripts" / "find-python313.sh")], capture_output=True, text=True, check=False)
    if found.returncode != 0:
        raise EngineError("no Python 3.13 found for sam build (scripts/find-python313.sh)")
    return Path(found.stdout.strip()).parent


class LocalLambda(Service):
    """Engine, base image, ``sam build``, moto + Knot, for one scenario set; a context manager."""

    def __init__(
        self,
        scenarios: ScenarioSet,
        *,
        build_dir: Path = DEFAULT_BUILD_DIR,
        arch: str = "arm64",
        log: Callable[[str], None] = print,
        build: bool = True,
        warm: bool = True,
    ) -> None:
        self.scenarios = scenarios
        self.build_dir = build_dir
        self.build = build  # False: use what is in build_dir (e.g. another commit's sam build)
        self.arch = arch
        self.log = log
        self.engine = DockerEngine()
        self.template = sam_template.load_template()
        self.stack = MotoStack(scenarios.zones, self.template, region=scenarios.region, log=log)
        self.image = ""
        self.timings: dict[str, float] = {}
        self.timeout_scale = 1
        self.warm = warm  # one start-lambda container per function; False: sam local invoke per event
        self._server: StartLambda | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self._tmp = tempfile.TemporaryDirectory(prefix="local-lambda-")
            self.stack.zone_dir = zones_with(self.scenarios, BOUNCER_ZONES, Path(self._tmp.name) / "zones")
            self._timed("engine", self.engine.start)
            self.log(f"dockerd pid {self.engine.pid} on {self.engine.socket} (data root {self.engine.data_root})")
            if self.arch == "arm64":
                self.log(ensure_arm64_emulation())
            self.timings["base_image_build"] = lambda_image.ensure_base_image(self.engine, self.arch, self.log)
            if self.build:
                self._timed("sam_build", self.sam_build)
            self.timeout_scale = self.scale_timeouts()
            self.stack.bind = self.engine.bridge_ip()
            self._timed("stack", self.stack.start)
            self.seed()
            self.image = self._timed("endpoint_image", self._endpoint_image)
            if self.warm:
                self._timed("start_lambda", self._start_server)
        except BaseException:
            self.stop()
            raise
        return self

    def _endpoint_image(self) -> str:
        return lambda_image.endpoint_image(self.engine, self.stack.moto.endpoint_url, self.arch)

    def _timed(self, what: str, fn: Callable[[], Any]) -> Any:
        started = time.monotonic()
        result = fn()
        self.timings[what] = time.monotonic() - started
        return result

    def _start_server(self) -> None:
        assert self._tmp is not None
        self._server = StartLambda(
            SAM_CLI,
            self._common_options([GATE, BOUNCER]),
            cwd=REPO,
            env=self._sam_env(),
            log_path=Path(self._tmp.name) / "start-lambda.log",
            region=self.scenarios.region,
        ).start()
        self.log(f"sam local start-lambda on {self._server.endpoint_url}, warm containers (EAGER)")

    def stop(self) -> None:
        server, self._server = self._server, None
        try:
            if server is not None:
                server.stop()
        finally:
            self._stop_rest()

    def _stop_rest(self) -> None:
        try:
            self.stack.stop()
        finally:
            try:
                if self.engine.pid is not None:
                    with contextlib.suppress(Exception):
                        lambda_image.remove_endpoint_images(self.engine)
            finally:
                self.engine.stop()
                if self._tmp is not None:
                    self._tmp.cleanup()
                    self._tmp = None

    # -- steps ------------------------------------------------------------------------------------------------

    def _sam_env(self) -> dict[str, str]:
        env = self.engine.env()
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_DEFAULT_PROFILE"):
            env.pop(key, None)
        env.update(
            {
                "SAM_CLI_TELEMETRY": "0",
                "SAM_CLI_RIE_DEV": "1",  # the emulator's phase lines: Init Duration (see reports_in)
                "AWS_ACCESS_KEY_ID": "testing",  # passed into the container by SAM CLI; moto accepts any
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "PATH": f"{python313_dir()}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            }
        )
        return env

    def sam_build(self) -> None:
        cmd = [
            *SAM_CLI,
            "build",
            "--template-file",
            str(REPO / "template.yaml"),
            "--build-dir",
            str(self.build_dir),
            "--cached",
            "--cache-dir",
            str(STATE_DIR / "sam-cache"),
        ]
        self.log(f"sam build -> {self.build_dir}")
        proc = subprocess.run(cmd, cwd=REPO, env=self._sam_env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise EngineError(f"sam build failed: {tail(proc.stdout + proc.stderr)}")

    def without_bytecode(self) -> Path:
        """A copy of the build without its byte code (what the layer was before ``sam build`` shipped it)."""
        assert self._tmp is not None
        copy = Path(self._tmp.name) / "build-without-bytecode"
        if not copy.exists():
            shutil.copytree(self.build_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
        return copy

    def scale_timeouts(self) -> int:
        """Under emulation, multiply the functions' ``Timeout`` in the *local* built template.

        An emulated arm64 CPU is 10-30x slower (a cold IPv6 decision: ~10 s init, then ~15 s making
        the first AWS clients), past the gate's 25 s. Only ``<build dir>/template.yaml`` changes;
        ``template.yaml`` and what ``sam deploy`` ships keep 25 s. ``IPV6GATE_LOCAL_TIMEOUT_SCALE``
        overrides the factor (default 10 when emulated, 1 when native).
        """
        default = "10" if needs_emulation(self.arch) else "1"
        scale = int(os.environ.get("IPV6GATE_LOCAL_TIMEOUT_SCALE", default))
        if scale == 1:
            return 1
        built = self.build_dir / "template.yaml"
        text, count = re.subn(
            r"^(\s+Timeout: )(\d+)\s*$", lambda m: f"{m[1]}{int(m[2]) * scale}", built.read_text(), flags=re.M
        )
        if count == 0:
            raise EngineError(f"{built}: no function Timeout found to scale")
        built.write_text(text)
        self.log(f"arm64 emulated: function timeouts x{scale} in {built} (local build only)")
        return scale

    def seed(self) -> None:
        done = self.stack.seed(self.environment(GATE), self.scenarios.directory)
        self.log(f"seeded moto: {done[0]}, {len(done) - 1} stored messages")

    def environment(self, function: str) -> dict[str, str]:
        """The function's declared variables as a local run sets them (what the env-vars file holds)."""
        parameters = dict(PARAMETERS)
        spec = sam_template.function_spec(
            self.template, function, parameters=parameters, region=self.scenarios.region, names=self.stack.names
        )
        values = {**spec.environment, "DNS_SERVERS": self.stack.dns_servers}
        if function == GATE and needs_emulation(self.arch):
            # The decision budget is wall-clock time counted from the call, and an emulated CPU makes the
            # first IPv6 decision's AWS clients (DynamoDB, then S3 for DKIM) in seconds, not ~0.1 s: with
            # 10 s the DKIM check of the container's first IPv6 event ran out (CI). The settings' maximum,
            # as the Timeouts are scaled above; a scenario set's own value still wins.
            values["DECISION_BUDGET_SECONDS"] = EMULATED_DECISION_BUDGET
        if function == GATE:
            values.update(self.scenarios.environment)
        return {k: v for k, v in values.items() if k in spec.environment}

    # -- invoking ---------------------------------------------------------------------------------------------

    def _common_options(self, functions: Sequence[str], build_dir: Path | None = None) -> list[str]:
        if self._tmp is None:
            raise EngineError("LocalLambda is not started")
        env_path = Path(self._tmp.name) / f"{'-'.join(functions)}-env.json"
        env_path.write_text(json.dumps({f: self.environment(f) for f in functions}), encoding="utf-8")
        return [
            "--template",
            str((build_dir or self.build_dir) / "template.yaml"),
            "--env-vars",
            str(env_path),
            "--region",
            self.scenarios.region,
            "--parameter-overrides",
            " ".join(f"{k}={v}" for k, v in PARAMETERS.items()),
            "--skip-pull-image",
            "--invoke-image",
            self.image,
        ]

    def invoke(self, function: str, name: str, event: Mapping[str, Any], *, timeout: float = 300.0) -> LocalInvoke:
        """The built function with one event: in its warm container, or (``warm=False``) by ``sam local
        invoke`` in a fresh one (a cold start each time)."""
        if self._server is not None:
            payload, output, seconds = self._server.invoke(function, event)
            result = LocalInvoke(name, 0, payload, output, seconds)
            if result.response is None:  # e.g. the function timed out
                raise EngineError(f"{function} ({name}) gave no response in start-lambda: {tail(output, 3)}")
            return result
        options = self._common_options([function])
        assert self._tmp is not None
        event_path = Path(self._tmp.name) / f"{function}-event.json"
        event_path.write_text(json.dumps(event), encoding="utf-8")
        cmd = [*SAM_CLI, "local", "invoke", function, "--event", str(event_path)]
        cmd += options
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd, cwd=REPO, env=self._sam_env(), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"sam local invoke {function} ({name}) took over {timeout:.0f} s") from exc
        if proc.returncode != 0:  # SAM CLI itself failed (a handler error exits 0, see LocalInvoke.error)
            errors = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip().startswith("Error:")]
            why = errors[-1] if errors else tail(proc.stderr, 2)
            raise EngineError(f"sam local invoke {function} ({name}) exited {proc.returncode}: {why}")
        result = LocalInvoke(name, proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
        if result.response is None:  # e.g. "Function 'GateFunction' timed out after 25 seconds"
            raise EngineError(f"sam local invoke {function} ({name}) gave no response: {tail(proc.stderr, 2)}")
        return result

    def warm_reports(
        self, function: str, event: Mapping[str, Any], count: int = 4, *, build_dir: Path | None = None
    ) -> list[Report]:
        """``count`` invokes of a container of its own (``sam local start-lambda --warm-containers LAZY``):
        the first REPORT has the Init Duration, the others are warm invokes. ``build_dir``: another build
        than the one started (e.g. ``without_bytecode()``)."""
        assert self._tmp is not None
        server = StartLambda(
            SAM_CLI,
            self._common_options([function], build_dir),
            cwd=REPO,
            env=self._sam_env(),
            log_path=Path(self._tmp.name) / "measure.log",
            region=self.scenarios.region,
            warm="LAZY",
        )
        reports: list[Report] = []
        with server:
            for index in range(count):
                payload, output, seconds = server.invoke(function, event)
                result = LocalInvoke(f"measure {index + 1}", 0, payload, output, seconds)
                if result.error or result.report is None:
                    raise EngineError(f"{function} failed in start-lambda: {result.error or tail(output)}")
                reports.append(result.report)
        return reports


def reports_in(text: str) -> list[Report]:
    """Each invocation's times in a container's output, in order.

    Init Duration: the emulator's ``INIT REPORT`` (the runtime's start and the module's import).
    Duration: its ``INVOKE RTDONE`` (the handler alone); without the emulator's debug lines, the
    ``REPORT`` line's figures.
    """
    out: list[Report] = []
    init: float | None = None
    done: float | None = None
    for line in text.splitlines():
        if m := _INIT_REPORT.search(line):
            init = float(m["ms"])
        elif m := _INVOKE_DONE.search(line):
            done = float(m["ms"])
        elif m := _REPORT.search(line):
            report_init = float(m["init"]) if m["init"] else None
            out.append(
                Report(
                    init_ms=init if init is not None else report_init,
                    duration_ms=done if done is not None else float(m["duration"]),
                    memory_mb=int(m["memory"]),
                    max_memory_used_mb=int(m["used"]) if m["used"] else None,
                )
            )
            init = done = None
    return out


# -- the bouncer's events ---------------------------------------------------------------------------------------

# The bouncer's cases bring their own DNS, whatever scenario set runs: their sender's domain is served
# by the same Knot as the set's zones/. Its SPF lists another prefix, so the queued bounce's client
# (2001:db8:bad::25) fails SPF for it: a definite "not proven", never a DNS error.
BOUNCE_SENDER_DOMAIN = "bounce-sender.test"
BOUNCER_ZONES = {
    BOUNCE_SENDER_DOMAIN: "\n".join(
        [
            f"$ORIGIN {BOUNCE_SENDER_DOMAIN}.",
            "$TTL 300",
            "@    IN SOA ns1 hostmaster 2026120801 3600 600 86400 300",
            "@    IN NS  ns1",
            "ns1  IN A   192.0.2.53",
            '@    IN TXT "v=spf1 ip6:2001:db8:25::/48 -all"',
            "",
        ]
    )
}


def zones_with(scenarios: ScenarioSet, extra: Mapping[str, str], into: Path) -> Path:
    """A zone folder for Knot: the scenario set's ``zones/*.zone`` plus ``extra`` (origin -> zone text)."""
    into.mkdir(parents=True, exist_ok=True)
    for zone in sorted(scenarios.zones.glob("*.zone")):
        shutil.copyfile(zone, into / zone.name)
    for origin, text in extra.items():
        target = into / f"{origin}.zone"
        if target.exists():
            raise ScenarioError(
                f"scenario set {scenarios.directory}: zones/{target.name} is the bouncer's (make local)"
            )
        target.write_text(text, encoding="utf-8")
    return into


def sqs_event(bodies: Mapping[str, str], region: str) -> dict[str, Any]:
    """An SQS event as Lambda's event source mapping delivers it: one record per (message id, body)."""
    now_ms = str(int(time.time() * 1000))
    arn = f"arn:aws:sqs:{region}:{sam_template.ACCOUNT_ID}:{sam_template.local_name('BounceQueue')}"
    return {
        "Records": [
            {
                "messageId": message_id,
                "receiptHandle": f"local-{message_id}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now_ms,
                    "SenderId": sam_template.ACCOUNT_ID,
                    "ApproximateFirstReceiveTimestamp": now_ms,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            }
            for message_id, body in bodies.items()
        ]
    }


def bounce_body(message_id: str, *, received: datetime, region: str, authenticate: bool = False) -> str:
    """A queued bounce request, as the gate writes it (``ipv6gate.bounce.request``)."""
    from ipv6gate.bounce.request import BouncedRecipient, BounceRequest

    reply = (
        "450 4.7.26 Service unavailable, message sent over IPv6 [2001:db8:bad::25] "
        "must pass either SPF or DKIM validation."
    )
    return BounceRequest(
        message_id=message_id,
        mail_from=f"billing@{BOUNCE_SENDER_DOMAIN}",
        client_ip="2001:db8:bad::25",
        arrival=received.astimezone(UTC).isoformat(),
        reporting_mta=f"dns; inbound-smtp.{region}.amazonaws.com",
        recipients=(BouncedRecipient("erin@example.com", "4.7.26", reply),),
        authenticate=authenticate,
        helo="mail.bad.example",
    ).to_json()


@dataclass(frozen=True)
class BouncerCase:
    """One bouncer invocation: its SQS records and what must come back and be logged."""

    name: str
    bodies: dict[str, str]  # SQS message id -> body
    failed: list[str]  # SQS message ids expected in batchItemFailures
    log_lines: list[str]  # log messages (prefixes) expected, in any order
    metrics: dict[str, float]


def bouncer_cases(region: str, now: datetime | None = None) -> list[BouncerCase]:
    """The paths that need no SendBounce (moto has none): expired, malformed, duplicate, suppressed."""
    now = now or datetime.now(UTC)
    expired = bounce_body("local-expired-0001", received=now - timedelta(hours=30), region=region)
    return [
        BouncerCase(
            "expired + malformed",
            {"sqs-expired-1": expired, "sqs-malformed-1": '{"version": 1, "message_id": "no recipients"'},
            failed=["sqs-malformed-1"],
            log_lines=["bounce request expired", "malformed bounce request"],
            metrics={"BouncesExpired": 1, "MalformedBounceRequests": 1},
        ),
        BouncerCase(
            "duplicate (redelivered)",
            {"sqs-expired-2": expired},
            failed=[],
            log_lines=["bounce already handled"],
            metrics={"BounceDuplicatesSkipped": 1},
        ),
        BouncerCase(
            "deferred, sender not proven",
            {
                "sqs-deferred-1": bounce_body(
                    "local-deferred-0001", received=now - timedelta(minutes=5), region=region, authenticate=True
                )
            },
            failed=[],
            log_lines=["bounce suppressed"],
            metrics={"BouncesSuppressed": 1},
        ),
    ]


def judge_bouncer(case: BouncerCase, result: LocalInvoke) -> list[str]:
    """Differences between a bouncer case and what its invocation answered and logged."""
    if result.error:
        return [result.error]
    problems: list[str] = []
    response = result.response
    failures = response.get("batchItemFailures") if isinstance(response, dict) else None
    if failures is None:
        return [f"no batchItemFailures in the response {response!r}"]
    got_failed = sorted(f.get("itemIdentifier", "?") for f in failures)
    if got_failed != sorted(case.failed):
        problems.append(f"batchItemFailures {got_failed} != expected {sorted(case.failed)}")
    messages = [str(r.get("message", "")) for r in result.logs()]
    for wanted in case.log_lines:
        if not any(m.startswith(wanted) for m in messages):
            problems.append(f"no log line {wanted!r} (got {messages})")
    metrics = result.metrics()
    for metric, value in case.metrics.items():
        if metrics.get(metric) != value:
            problems.append(f"metric {metric} = {metrics.get(metric)} != expected {value}")
    return problems
