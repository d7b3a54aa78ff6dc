"""The built artifact runs: real ``sam local invoke`` of the gate and of the bouncer, arm64, offline.

Through the same code as ``make local`` (``tests/support/local_lambda.py``): a private dockerd, the
offline arm64 Lambda base image (built once per machine; later runs reuse it), ``sam build`` of
``template.yaml`` as deployed, moto server and Knot on loopback. Two of the demo events go through
``sam local invoke GateFunction`` (a DKIM pass that reads the raw message from S3, a 4.7.25), and
the bouncer's paths that need no SendBounce (expired, malformed, duplicate) through ``sam local
invoke BouncerFunction``; its handler error on a non-SQS event shows that an ``errorType`` response
fails the invoke although ``sam local invoke`` exits 0. An engine that cannot start fails the test
with its one-line reason; it never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import local_lambda, sam_local, sam_template, scenarios
from tests.support.docker_engine import EngineError

pytestmark = pytest.mark.integration

# Each emulated invoke takes ~40 s (a cold container: ~10 s init, ~15 s first AWS clients): CI keeps
# to two gate events and the bouncer's three SendBounce-free paths; make local runs every scenario.
GATE_EVENTS = ("ipv6-dkim-only.json", "ipv6-no-ptr.json")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_lambda.LocalLambda]:
    spec = sam_template.function_spec(sam_template.load_template(), local_lambda.GATE)
    chosen = scenarios.load_scenarios(sam_local.EVENTS_DIR, sorted(spec.environment))
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


@pytest.mark.parametrize("name", GATE_EVENTS)
def test_gate_decides_in_the_lambda_container(local: local_lambda.LocalLambda, name: str) -> None:
    want = local.scenarios.expected[name]
    result = local.invoke(local_lambda.GATE, name, local.scenarios.event(name))
    assert result.error is None, result.stderr[-3000:]
    assert result.response == {"disposition": want["disposition"]}
    outcome = result.outcome()
    assert scenarios.judge(outcome, want) == []
    assert [r for r in result.logs() if r["level"] in ("ERROR", "CRITICAL")] == []
    report = result.report
    assert report is not None and report.init_ms is not None, result.stderr[-2000:]
    assert report.memory_mb == 256  # the template's MemorySize reached the runtime
    assert result.metrics().get("ColdStart") == 1  # every sam local invoke is a fresh container
    if name == "ipv6-dkim-only.json":  # the raw message came from moto's S3, the key from Knot
        assert outcome.decision is not None and outcome.decision["checks"]["dkim"]["result"] == "pass"
    print(
        f"{name}: {result.seconds:.1f} s, Init Duration {report.init_ms:.0f} ms, Duration {report.duration_ms:.0f} ms"
    )


def test_bouncer_paths_without_sendbounce(local: local_lambda.LocalLambda) -> None:
    # In order: the expired request's outcome is stored, so its redelivery is a duplicate.
    for case in local_lambda.bouncer_cases(local.scenarios.region)[:2]:  # make local also runs the third
        result = local.invoke(
            local_lambda.BOUNCER, case.name, local_lambda.sqs_event(case.bodies, local.scenarios.region)
        )
        assert local_lambda.judge_bouncer(case, result) == [], result.stderr[-3000:]
        print(f"bouncer {case.name}: {result.seconds:.1f} s")


def test_handler_error_fails_the_invoke(local: local_lambda.LocalLambda) -> None:
    """``sam local invoke`` exits 0 when the handler raised: the harness must see the errorType."""
    result = local.invoke(local_lambda.BOUNCER, "not an SQS event", {})
    assert result.exit_code == 0
    assert isinstance(result.response, dict) and result.response.get("errorType") == "UnexpectedBatchTypeError"
    assert result.error is not None and result.error.startswith("UnexpectedBatchTypeError: "), result.stdout
