"""The built artifact runs: the gate and the bouncer in SAM CLI's local Lambda, arm64, offline.

Through the same code as ``make local`` (``devstack/local_lambda.py``): a private dockerd, the
offline arm64 Lambda base image (built once per machine; later runs reuse it), ``sam build`` of
``template.yaml`` as deployed, moto server and Knot on loopback, and ``sam local start-lambda`` with
one warm container per function, called with boto3's ``lambda`` client.

The scenario set is events/ with ``shop.example`` renamed (so its zones differ from events/): every
event goes through GateFunction and matches the set's expected.json, the first in a cold container
and the rest in the same, warm one; the bouncer's paths that need no SendBounce (expired, malformed,
duplicate, sender not proven) go through BouncerFunction, the last one with the DNS the bouncer's
cases bring (``shop.example``, which the sender once needed, is not served). A handler error on a
non-SQS event shows that an ``errorType`` response fails the invocation. An engine that cannot start
fails the test with its one-line reason; it never skips.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import local_lambda, sam_template, scenarios
from devstack.docker_engine import EngineError

pytestmark = pytest.mark.integration


def renamed_set(source: Path, target: Path, old: str, new: str) -> Path:
    """A copy of the scenario set ``source`` with the domain ``old`` called ``new`` (events, zones, expectations).

    Raw messages are copied as they are: their DKIM signatures cover their text.
    """
    shutil.copytree(source, target)
    for path in [*target.glob("*.json"), *target.glob("zones/*.zone")]:
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
        if old in path.name:
            path.rename(path.with_name(path.name.replace(old, new)))
    return target


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_lambda.LocalLambda]:
    spec = sam_template.function_spec(sam_template.load_template(), local_lambda.GATE)
    directory = renamed_set(
        scenarios.EVENTS_DIR, tmp_path_factory.mktemp("set") / "events", "shop.example", "store.example"
    )
    assert not (directory / "zones" / "shop.example.zone").exists()
    chosen = scenarios.load_scenarios(directory, sorted(spec.environment))
    engine = local_lambda.LocalLambda(chosen, build_dir=tmp_path_factory.mktemp("sam") / "build", log=print)
    try:
        engine.start()
    except EngineError as exc:
        pytest.fail(f"the local Lambda engine could not start: {exc}", pytrace=False)
    try:
        yield engine
    finally:
        engine.stop()
    # dockerd mounts its network namespaces under the exec root; a stopped engine must leave none.
    ours = (str(engine.engine.state_dir), "ipv6gate-dockerd-")  # the state dir, or its short stand-in
    mounts = Path("/proc/mounts").read_text().splitlines()
    assert not [m for m in mounts if "/exec/netns/" in m and any(o in m for o in ours)], "netns mounts left behind"


def test_built_layer_is_the_arm64_artifact(local: local_lambda.LocalLambda) -> None:
    layer = local.build_dir / "IPv6GateLayer" / "python"
    source = local_lambda.REPO / "layers" / "ipv6gate" / "ipv6gate"
    modules = sorted(str(p.relative_to(source)) for p in source.rglob("*.py"))
    assert modules and all((layer / "ipv6gate" / m).is_file() for m in modules), "package modules missing"
    native = sorted(p.name for p in layer.rglob("*.so"))
    assert native and all("aarch64" in name or "abi3" in name for name in native), native
    assert not (layer / "boto3").exists(), "the runtime provides boto3; the layer must not ship it"
    client = local.engine.client()
    try:
        assert client.images.get(local.image).attrs["Architecture"] == "arm64"
    finally:
        client.close()


def test_every_event_decides_in_a_warm_container(local: local_lambda.LocalLambda) -> None:
    names = local.scenarios.events
    assert len(names) == len(scenarios.event_files()) and "ipv6-dkim-only.json" in names
    for index, name in enumerate(names):
        want = local.scenarios.expected[name]
        result = local.invoke(local_lambda.GATE, name, local.scenarios.event(name))
        assert result.error is None, result.stderr[-3000:]
        assert result.response == {"disposition": want["disposition"]}
        outcome = result.outcome()
        assert scenarios.judge(outcome, want) == [], name
        assert [r for r in result.logs() if r["level"] in ("ERROR", "CRITICAL")] == []
        report = result.report
        assert report is not None and report.memory_mb == 256, result.stderr[-2000:]  # the template's MemorySize
        if index == 0:  # the container's first invocation initialises it
            assert report.init_ms is not None and result.metrics().get("ColdStart") == 1
        else:  # the same container, warm
            assert report.init_ms is None and "ColdStart" not in result.metrics(), name
        if name == "ipv6-dkim-only.json":  # the raw message came from moto's S3, the key from Knot
            assert outcome.decision is not None and outcome.decision["checks"]["dkim"]["result"] == "pass"
        print(
            f"{name}: {result.seconds:.1f} s, Init Duration {report.init_ms} ms, Duration {report.duration_ms:.0f} ms"
        )


def test_bouncer_paths_without_sendbounce(local: local_lambda.LocalLambda) -> None:
    # In order: the expired request's outcome is stored, so its redelivery is a duplicate.
    for case in local_lambda.bouncer_cases(local.scenarios.region):
        result = local.invoke(
            local_lambda.BOUNCER, case.name, local_lambda.sqs_event(case.bodies, local.scenarios.region)
        )
        assert local_lambda.judge_bouncer(case, result) == [], result.stderr[-3000:]
        print(f"bouncer {case.name}: {result.seconds:.1f} s")


def test_handler_error_fails_the_invoke(local: local_lambda.LocalLambda) -> None:
    """The local endpoint answers 200 when the handler raised: the harness must see the errorType."""
    result = local.invoke(local_lambda.BOUNCER, "not an SQS event", {})
    assert result.exit_code == 0
    assert isinstance(result.response, dict) and result.response.get("errorType") == "UnexpectedBatchTypeError"
    assert result.error is not None and result.error.startswith("UnexpectedBatchTypeError: "), result.stdout
