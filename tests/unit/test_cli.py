import json
from pathlib import Path

import pytest

from ipv6gate.entrypoints.cli import main
from tests.support import world


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
    (env / "msg.eml").write_bytes(raw)
    a = world.dump(world.ses_event(), env / "a.json")
    b = world.dump(world.ses_event(ip=world.OTHER_IP, raw=raw), env / "b.json")
    c = world.dump(world.ses_event(ip=world.NO_PTR_IP), env / "c.json")
    code, out, err = run(
        capsys,
        "evaluate",
        str(a),
        str(b),
        str(c),
        "--message",
        str(env / "msg.eml"),
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
    [(None, "cannot read"), ("{not json", "invalid JSON"), ('{"Records": []}', "not an SES event: no Records[0]")],
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
        and err == ["ipv6gate: configuration: PTR_MODE: 'sometimes' is not one of exists|fcrdns"]
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
    assert code == 2 and out == [] and len(err) == 1 and err[0].startswith("ipv6gate: configuration: DNS_SERVERS:")


def test_all_checks_runs_every_check(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = world.dump(world.ses_event(ip=world.NO_PTR_IP), env / "noptr.json")
    code, out, _ = run(capsys, "evaluate", str(event), "--all-checks", "--tenants", str(env / "tenants.json"))
    line = json.loads(out[0])
    assert code == 0 and line["checks"]["spf"]["result"] == "fail" and line["checks"]["dkim"]["result"] == "none"
    assert line["recipients"][0]["reply"].startswith("450 4.7.25")
