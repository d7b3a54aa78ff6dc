import json
from pathlib import Path

import pytest

from devstack import world
from ipv6gate.entrypoints.cli import main


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keys: world.Keys) -> Path:
    monkeypatch.setenv("DNS_ZONE_DIR", str(world.write_zone_dir(tmp_path / "zones", keys)))
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    for name in ("TENANTS_TABLE", "MESSAGE_BUCKET", "DNS_SERVERS", "PTR_MODE", "TEMPERROR_ACTION"):
        monkeypatch.delenv(name, raising=False)
    tenants = tmp_path / "tenants.json"
    tenants.write_text(json.dumps([{"domain": "tenant.test", "ipv6_inbound": True}]))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_one_json_line_per_event(env: Path, capsys: pytest.CaptureFixture[str], keys: world.Keys) -> None:
    raw = world.sign(world.message(), keys)
    (env / "m-b.eml").write_bytes(raw)  # named after its event's SES message id, as SES's S3 action stores it
    a = world.dump(world.ses_event(message_id="m-a"), env / "a.json")
    b = world.dump(world.ses_event(ip=world.OTHER_IP, raw=raw, message_id="m-b"), env / "b.json")
    c = world.dump(world.ses_event(ip=world.NO_PTR_IP, message_id="m-c"), env / "c.json")
    code, out, err = run(
        capsys,
        "evaluate",
        str(a),
        str(b),
        str(c),
        "--message",
        str(env / "m-b.eml"),
        "--tenants",
        str(env / "tenants.json"),
    )
    assert code == 0 and err == []
    lines = [json.loads(line) for line in out]
    assert [line["event"] for line in lines] == [str(a), str(b), str(c)]
    assert [line["disposition"] for line in lines] == ["CONTINUE", "CONTINUE", "STOP_RULE_SET"]
    assert lines[1]["checks"]["dkim"]["result"] == "pass"
    assert lines[2]["recipients"][0]["reply"].startswith("450 4.7.25 ")
    assert set(lines[0]) >= {"message_id", "client_ip", "ip_version", "disposition", "recipients", "checks"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "invalid JSON"),
        ('{"Records": []}', "not an SES event: no Records[0] (give SES receipt event files only)"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(
    env: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    bad = env / "bad.json"
    if content is not None:
        bad.write_text(content)
    good = world.dump(world.ses_event(), env / "good.json")
    code, out, err = run(capsys, "evaluate", str(bad), str(good), "--tenants", str(env / "tenants.json"))
    assert code == 1
    assert len(err) == 1 and str(bad) in err[0] and message in err[0]
    assert len(out) == 1  # the good event is still decided


def test_configuration_errors_exit_2(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTR_MODE", "sometimes")
    good = world.dump(world.ses_event(), env / "good.json")
    code, out, err = run(capsys, "evaluate", str(good), "--tenants", str(env / "tenants.json"))
    assert (
        code == 2
        and out == []
        and err == ["ipv6gate evaluate: configuration: PTR_MODE: 'sometimes' is not one of exists|fcrdns"]
    )


def test_tenant_table_is_required_without_a_tenants_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = world.dump(world.ses_event(), env / "good.json")
    code, _, err = run(capsys, "evaluate", str(good))
    assert code == 2 and "TENANTS_TABLE" in err[0]


def test_bad_tenants_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "t.json").write_text('[{"domain": "a.test", "mode": "loud"}]')
    good = world.dump(world.ses_event(), env / "good.json")
    code, _, err = run(capsys, "evaluate", str(good), "--tenants", str(env / "t.json"))
    assert code == 1 and len(err) == 1 and "mode 'loud'" in err[0]


def test_no_resolver_configuration_is_a_configuration_error(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dns.resolver

    def no_config(*args: object, **kwargs: object) -> None:
        raise dns.resolver.NoResolverConfiguration("no nameservers")

    monkeypatch.delenv("DNS_ZONE_DIR")
    monkeypatch.setattr(dns.resolver.Resolver, "__init__", no_config)
    good = world.dump(world.ses_event(), env / "good.json")
    code, out, err = run(capsys, "evaluate", str(good), "--tenants", str(env / "tenants.json"))
    assert (
        code == 2
        and out == []
        and len(err) == 1
        and err[0].startswith("ipv6gate evaluate: configuration: DNS_SERVERS:")
    )


def test_all_checks_runs_every_check(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = world.dump(world.ses_event(ip=world.NO_PTR_IP), env / "noptr.json")
    code, out, _ = run(capsys, "evaluate", str(event), "--all-checks", "--tenants", str(env / "tenants.json"))
    line = json.loads(out[0])
    assert code == 0 and line["checks"]["spf"]["result"] == "fail" and line["checks"]["dkim"]["result"] == "none"
    assert line["recipients"][0]["reply"].startswith("450 4.7.25")


# -- the shipped scenario set, as the README's offline line runs it ----------------------------------------------

EVENTS = Path(__file__).resolve().parents[2] / "events"


def readme_line(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict], list[str]]:
    """``ipv6gate evaluate events/ipv*.json --message events/*.eml --tenants events/tenants.json``."""
    events = sorted(str(p) for p in EVENTS.glob("ipv*.json"))
    messages = sorted(str(p) for p in EVENTS.glob("*.eml"))
    code, out, err = run(
        capsys, "evaluate", *events, "--message", *messages, "--tenants", str(EVENTS / "tenants.json"), *extra
    )
    return code, [json.loads(line) for line in out], err


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNS_ZONE_DIR", str(EVENTS / "zones"))
    for name in ("TENANTS_TABLE", "MESSAGE_BUCKET", "TRUSTED_RECEIVERS", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("ambient", [None, "us-east-1", "eu-west-1"])
def test_shipped_events_give_their_expected_results_whatever_the_ambient_region(
    shipped: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ambient: str | None
) -> None:
    """The events were received in eu-west-1; AWS_DEFAULT_REGION (where this shell calls AWS) says nothing of that."""
    if ambient:
        monkeypatch.setenv("AWS_DEFAULT_REGION", ambient)
    code, lines, err = readme_line(capsys)
    assert code == 0 and err == []
    expected = json.loads((EVENTS / "expected.json").read_text())
    assert len(lines) == len(expected)
    for line in lines:
        want = expected[Path(line["event"]).name]
        assert line["disposition"] == want["disposition"], line
        assert line["client_ip"] == want["client_ip"]
        got = [(r["reply"], r.get("monitor", False), r.get("would_reply")) for r in line["recipients"]]
        assert got == [(r["reply"], r["monitor"], r.get("would_reply")) for r in want["recipients"]], line
    dkim = next(line for line in lines if line["event"].endswith("ipv6-dkim-only.json"))
    assert dkim["checks"]["dkim"]["result"] == "pass"  # its .eml was matched to it


def test_received_in_narrows_the_trusted_receiver(shipped: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = readme_line(capsys, "--received-in", "us-east-1")
    assert code == 0 and all(line["client_ip"] is None for line in lines)
    assert "not a trusted receiver" in lines[0]["recipients"][0]["reason"]
    code, lines, _ = readme_line(capsys, "--received-in", "eu-west-1")
    assert code == 0 and all(line["client_ip"] for line in lines)


def test_a_bad_received_in_is_refused(shipped: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "evaluate", str(EVENTS / "ipv6-no-ptr.json"), "--received-in", "eu west")
    assert (
        code == 1
        and out == []
        and err == ["ipv6gate evaluate: --received-in 'eu west': not an AWS region name like eu-west-1"]
    )


def test_a_raw_message_is_never_applied_to_another_event(shipped: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "evaluate",
        str(EVENTS / "ipv6-not-authenticated.json"),
        "--message",
        str(EVENTS / "ipv6-dkim-only.eml"),
        "--tenants",
        str(EVENTS / "tenants.json"),
    )
    assert code == 1 and out == [] and len(err) == 1
    assert err[0].startswith(f"ipv6gate evaluate: {EVENTS / 'ipv6-dkim-only.eml'}: matches none of the events given")
    assert "lqjocxlutlilbj5sdwflk4nj5besgwszv3b5m4ny" in err[0]


def test_two_raw_messages_for_one_event_are_refused(
    shipped: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    copy = tmp_path / "lqjocxlutlilbj5sdwflk4nj5besgwszv3b5m4ny"  # the S3 key: named by the message id
    copy.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    original = EVENTS / "ipv6-dkim-only.eml"
    code, out, err = run(
        capsys, "evaluate", str(EVENTS / "ipv6-dkim-only.json"), "--message", str(original), str(copy), "--tenants",
        str(EVENTS / "tenants.json"),
    )  # fmt: skip
    assert code == 1 and out == []
    mid = "lqjocxlutlilbj5sdwflk4nj5besgwszv3b5m4ny"
    assert err == [f"ipv6gate evaluate: {original} and {copy} are both the raw message of {mid}: give one"]


@pytest.mark.parametrize("name", ["env.json", "expected.json", "tenants.json"])
def test_a_file_that_is_not_an_event_is_named(shipped: None, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, out, err = run(capsys, "evaluate", str(EVENTS / name), "--tenants", str(EVENTS / "tenants.json"))
    assert (
        code == 1
        and out == []
        and len(err) == 1
        and err[0].startswith(f"ipv6gate evaluate: {EVENTS / name}: not an SES event")
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"domain": "tenant.test", "ipv6_inbound": "yes"}, "ipv6_inbound must be true or false, not 'yes'"),
        ({"domain": "tenant.test", "ipv6_inbound": 1}, "ipv6_inbound must be true or false, not 1"),
        ({"domain": "tenant.test."}, "write the domain as 'tenant.test'"),
        ({"domain": "tenant.test", "partner_prefixes": "2001:db8::/32"}, "partner_prefixes must be a list"),
    ],
)
def test_a_bad_tenants_file_entry_is_refused(
    env: Path, capsys: pytest.CaptureFixture[str], entry: dict[str, object], message: str
) -> None:
    (env / "t.json").write_text(json.dumps([entry]))
    good = world.dump(world.ses_event(), env / "good.json")
    code, out, err = run(capsys, "evaluate", str(good), "--tenants", str(env / "t.json"))
    assert (
        code == 1
        and out == []
        and len(err) == 1
        and err[0].startswith(f"ipv6gate evaluate: --tenants {env / 't.json'}: ")
    )
    assert message in err[0]


# -- one line, one documented status, for every error ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("evaluate",), "the following arguments are required: EVENT.json (see: ipv6gate evaluate --help)"),
        (("tenants", "frob"), "argument ACTION: invalid choice: 'frob'"),
        (("tenants", "--bogus"), "ipv6gate tenants: unrecognized arguments: --bogus"),
        (("nonsense",), "argument COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == [] and len(err) == 1 and err[0].startswith("ipv6gate") and message in err[0]


@pytest.mark.parametrize(
    "argv", [("tenants", "list"), ("tenants", "enable", "example.com"), ("trace", "--ip", "2001:db8::1")]
)
def test_no_aws_region_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("TENANTS_TABLE", "t")
    monkeypatch.setenv("TRACE_TABLE", "t")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == []
    assert err == [
        f"ipv6gate {argv[0]}: configuration: no AWS region: set AWS_REGION or AWS_DEFAULT_REGION "
        "(or a region in the AWS profile)"
    ]


def test_evaluate_against_the_table_needs_a_region(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("TENANTS_TABLE", "t")
    code, out, err = run(capsys, "evaluate", str(world.dump(world.ses_event(), env / "e.json")))
    assert code == 2 and out == [] and len(err) == 1 and "no AWS region" in err[0]


@pytest.mark.parametrize(
    ("domain", "message"), [("", "empty domain"), ("1.2.3.4", "'1.2.3.4' is an IP address, not a domain")]
)
def test_tenant_domains_are_checked_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], domain: str, message: str
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("TENANTS_TABLE", "t")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: any call would fail (exit 3)
    for action in ("enable", "disable", "remove"):
        code, out, err = run(capsys, "tenants", action, domain)
        assert (code, out, len(err)) == (1, [], 1) and err[0].startswith(f"ipv6gate tenants {action}: {message}")


def test_record_needs_the_trace_table(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRACE_TABLE", raising=False)
    good = world.dump(world.ses_event(), env / "good.json")
    code, out, err = run(capsys, "evaluate", str(good), "--tenants", str(env / "tenants.json"), "--record")
    assert (
        code == 2
        and out == []
        and err == ["ipv6gate evaluate: configuration: TRACE_TABLE: not set (--record writes each decision there)"]
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"AWS_ENDPOINT_URL": "notaurl"}, "AWS dynamodb client: Invalid endpoint: notaurl"),
        ({"AWS_REGION": "bad region!"}, "AWS dynamodb client: Provided region_name 'bad region!'"),
    ],
)
@pytest.mark.parametrize("argv", [("tenants", "list"), ("trace", "some-id"), ("evaluate", "EVENT")])
def test_an_unusable_aws_setting_is_one_line(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variables: dict[str, str],
    message: str,
    argv: tuple[str, ...],
) -> None:
    for name, value in {"TENANTS_TABLE": "t", "TRACE_TABLE": "t", **variables}.items():
        monkeypatch.setenv(name, value)
    event = str(world.dump(world.ses_event(ip=world.NO_PTR_IP), env / "e.json"))
    code, _, err = run(capsys, *(event if a == "EVENT" else a for a in argv))
    assert code == 2 and len(err) == 1 and err[0].startswith(f"ipv6gate {argv[0]}: configuration: {message}")
