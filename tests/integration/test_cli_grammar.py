"""One CLI grammar: every command, every kind of bad input, one line ``ipv6gate <command>: ...`` and its status.

In-process through ``cli.main`` against a real local DynamoDB and S3 (moto server), so the AWS
statuses (3: a table that does not answer, a raw message S3 cannot give) and not-found (4) are real;
a few rows again through the installed console script, to prove the wiring.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devstack import world
from devstack.moto_server import MotoServer, aws_env
from devstack.moto_stack import create_template_table
from ipv6gate.entrypoints.cli import main
from ipv6gate.entrypoints.exits import MEANING, Exit

pytestmark = pytest.mark.integration
TENANTS, TRACE = "grammar-tenants", "grammar-trace"
CLI = str(Path(sys.executable).with_name("ipv6gate"))
README = Path(__file__).resolve().parents[2] / "README.md"
DOWN = "http://127.0.0.1:9"  # nothing listens there: AWS is unreachable


@pytest.fixture(scope="module")
def tables(moto: MotoServer) -> Any:
    client = moto.client("dynamodb")
    create_template_table(client, "TenantsTable", TENANTS)
    create_template_table(client, "TraceTable", TRACE)
    other = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Other": {"Value": "x"}}}
    moto.client("cloudformation").create_stack(StackName="grammar-other", TemplateBody=json.dumps(other))
    return client


@pytest.fixture
def files(
    moto: MotoServer, tables: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keys: world.Keys
) -> dict[str, str]:
    for name in ("MESSAGE_BUCKET", "DNS_SERVERS", "PTR_MODE", "TEMPERROR_ACTION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # an unreachable AWS answers at once
    for name, value in {**aws_env(moto.endpoint_url), "TENANTS_TABLE": TENANTS, "TRACE_TABLE": TRACE}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DNS_ZONE_DIR", str(world.write_zone_dir(tmp_path / "zones", keys)))
    written = {
        "TENANTS": json.dumps([{"domain": "tenant.test", "ipv6_inbound": True}]),
        "NO_TENANTS": "[]",
        "EMPTY": "",
        "NOT_JSON": "{not json",
        "NOT_A_LIST": '{"domain": "tenant.test"}',
    }
    paths = {name: tmp_path / f"{name.lower()}.json" for name in written}
    for name, text in written.items():
        paths[name].write_text(text, encoding="utf-8")
    event = world.dump(world.ses_event(ip=world.NO_PTR_IP, message_id="m-grammar"), tmp_path / "event.json")
    return {**{k: str(v) for k, v in paths.items()}, "EVENT": str(event), "MISSING": str(tmp_path / "nope.json")}


# (the command the line names, argv, extra environment, status, what the line says)
CASES: list[tuple[str, tuple[str, ...], dict[str, str], Exit, str]] = [
    # no command, or an unknown one
    ("", (), {}, Exit.USAGE, "the following arguments are required: COMMAND"),
    ("", ("nonsense",), {}, Exit.USAGE, "invalid choice: 'nonsense'"),
    # evaluate
    ("evaluate", ("evaluate",), {}, Exit.USAGE, "the following arguments are required: EVENT.json"),
    ("evaluate", ("evaluate", "EVENT", "--tenants", "TENANTS", "--bogus"), {}, Exit.USAGE, "unrecognized arguments"),
    ("evaluate", ("evaluate", "MISSING", "--tenants", "TENANTS"), {}, Exit.INPUT, "cannot read: no such file"),
    ("evaluate", ("evaluate", "NOT_JSON", "--tenants", "TENANTS"), {}, Exit.INPUT, "invalid JSON"),
    ("evaluate", ("evaluate", "EVENT", "--tenants", "MISSING"), {}, Exit.INPUT, "nope.json: no such file or directory"),
    ("evaluate", ("evaluate", "EVENT", "--tenants", "EMPTY"), {}, Exit.INPUT, "the file is empty"),
    ("evaluate", ("evaluate", "EVENT", "--tenants", "NOT_JSON"), {}, Exit.INPUT, "not valid JSON: expecting"),
    ("evaluate", ("evaluate", "EVENT", "--tenants", "NOT_A_LIST"), {}, Exit.INPUT, "must be a JSON list"),
    ("evaluate", ("evaluate", "EVENT", "--received-in", "eu west"), {}, Exit.INPUT, "not an AWS region name"),
    ("evaluate", ("evaluate", "EVENT"), {"PTR_MODE": "sometimes"}, Exit.USAGE, "configuration: PTR_MODE"),
    ("evaluate", ("evaluate", "EVENT"), {"TENANTS_TABLE": "no-such"}, Exit.AWS, "tenant_lookup failed"),
    # tenants
    ("tenants", ("tenants",), {}, Exit.USAGE, "give an action: enable, disable, remove"),
    ("tenants", ("tenants", "--bogus"), {}, Exit.USAGE, "unrecognized arguments: --bogus"),
    ("tenants", ("tenants", "frob"), {}, Exit.USAGE, "invalid choice: 'frob'"),
    ("tenants enable", ("tenants", "enable"), {}, Exit.USAGE, "the following arguments are required: domain"),
    ("tenants enable", ("tenants", "enable", "1.2.3.4"), {}, Exit.INPUT, "'1.2.3.4' is an IP address, not a domain"),
    ("tenants enable", ("tenants", "enable", ""), {}, Exit.INPUT, "empty domain"),
    (
        "tenants enable",
        ("tenants", "enable", "a..b"),
        {},
        Exit.INPUT,
        "'a..b' is not a domain name: a DNS label is empty",
    ),
    ("tenants add-partner", ("tenants", "add-partner", "x.test", "2001:zz::/48"), {}, Exit.INPUT, "2001:zz::/48"),
    # A partner skips the checks: the whole IPv6 Internet as one partner would switch the rule off.
    ("tenants add-partner", ("tenants", "add-partner", "x.test", "::/0"), {}, Exit.INPUT, "wider than /16"),
    ("tenants add-partner", ("tenants", "add-partner", "x.test", "2000::/3"), {}, Exit.INPUT, "wider than /16"),
    ("tenants status", ("tenants", "status", "--json"), {}, Exit.USAGE, "unrecognized arguments: --json"),
    ("tenants status", ("tenants", "status", "--format", "xml"), {}, Exit.INPUT, "invalid choice: 'xml'"),
    ("tenants list", ("tenants", "list", "--by", "me"), {}, Exit.USAGE, "unrecognized arguments: --by me"),
    ("tenants remove", ("tenants", "remove", "never.example"), {}, Exit.NOT_FOUND, "no tenant record to remove"),
    ("tenants remove", ("tenants", "remove", "bad_key!"), {}, Exit.INPUT, "tenants remove --exact KEY"),
    ("tenants remove", ("tenants", "remove", "--exact", " "), {}, Exit.INPUT, "empty key"),
    ("tenants list", ("tenants", "list"), {"TENANTS_TABLE": ""}, Exit.USAGE, "configuration: TENANTS_TABLE"),
    ("tenants list", ("tenants", "list", "--stack", ""), {}, Exit.INPUT, "--stack: empty stack name"),
    (
        "tenants list",
        ("tenants", "list", "--stack", "nope"),
        {},
        Exit.USAGE,
        "configuration: stack nope: no such stack",
    ),
    ("tenants list", ("tenants", "list", "--stack", "grammar-other"), {}, Exit.USAGE, "has no output TenantsTableName"),
    (
        "tenants list",
        ("tenants", "list", "--stack", "s"),
        {"AWS_ENDPOINT_URL": DOWN},
        Exit.AWS,
        "stack s: cannot be read",
    ),
    ("tenants list", ("tenants", "list"), {"TENANTS_TABLE": "no-such"}, Exit.AWS, "no-such"),
    ("tenants list", ("tenants", "list"), {"AWS_ENDPOINT_URL": DOWN}, Exit.AWS, "Could not"),
    # trace
    ("trace", ("trace",), {}, Exit.USAGE, "give a MESSAGE_ID or one of --ip, --sender, --domain"),
    ("trace", ("trace", ""), {}, Exit.INPUT, "MESSAGE_ID is empty"),
    ("trace", ("trace", "--ip", "2001:db8::1", "--limit", "abc"), {}, Exit.INPUT, "'abc' is not a whole number"),
    ("trace", ("trace", "--ip", "2001:db8::1", "--limit", "0"), {}, Exit.INPUT, "0 is outside 1..1000"),
    ("trace", ("trace", "--domain", "1.2.3.4"), {}, Exit.INPUT, "is an IP address, not a domain"),
    ("trace", ("trace", "--sender", "notanemail"), {}, Exit.INPUT, "is not an address with a domain"),
    ("trace", ("trace", "--ip", "192.0.2.1"), {}, Exit.INPUT, "IPv4 mail is never recorded"),
    ("trace", ("trace", "--ip", "nonsense"), {}, Exit.INPUT, "--ip 'nonsense'"),
    ("trace", ("trace", "m-1", "--ip", "2001:db8::1"), {}, Exit.USAGE, "are exclusive"),
    ("trace", ("trace", "--ip", "2001:db8::1", "--sender", "a@b.test"), {}, Exit.USAGE, "not allowed with"),
    ("trace", ("trace", "--ip", "2001:db8::1", "--by", "me"), {}, Exit.USAGE, "unrecognized arguments: --by"),
    ("trace", ("trace", "never-recorded"), {}, Exit.NOT_FOUND, "no recorded decision for message"),
    ("trace", ("trace", "never-recorded"), {"TRACE_TABLE": ""}, Exit.USAGE, "configuration: TRACE_TABLE"),
    ("trace", ("trace", "never-recorded"), {"TRACE_TABLE": "no-such"}, Exit.AWS, "no-such"),
    ("trace", ("trace", "m-1"), {"AWS_ENDPOINT_URL": DOWN}, Exit.AWS, "Could not connect"),
    # report
    ("report", ("report", "--limit", "abc"), {}, Exit.INPUT, "'abc' is not a whole number"),
    ("report", ("report", "--days", "0"), {}, Exit.INPUT, "0 is outside 1..3650"),
    ("report", ("report", "--format", "xml"), {}, Exit.INPUT, "invalid choice: 'xml'"),
    ("report", ("report", "--domain", "1.2.3.4"), {}, Exit.INPUT, "is an IP address, not a domain"),
    ("report", ("report", "--by", "me"), {}, Exit.USAGE, "unrecognized arguments: --by me"),
    ("report", ("report",), {"TRACE_TABLE": ""}, Exit.USAGE, "configuration: TRACE_TABLE"),
    ("report", ("report", "--domain", "x.test"), {"TRACE_TABLE": "no-such"}, Exit.AWS, "no-such"),
    # milter
    ("milter", ("milter",), {}, Exit.USAGE, "give --listen"),
    ("milter", ("milter", "--listen", "8894"), {}, Exit.INPUT, "--listen '8894' is not HOST:PORT"),
    ("milter", ("milter", "--listen", "[::1]:1", "--socket-mode", "0660"), {}, Exit.USAGE, "unix: socket only"),
    ("milter", ("milter", "--check", "--tenants", "MISSING"), {}, Exit.INPUT, "no such file or directory"),
    ("milter", ("milter", "--check", "--tenants", "NOT_JSON"), {}, Exit.INPUT, "not valid JSON"),
    ("milter", ("milter", "--check"), {"MILTER_MAX_RECIPIENTS": "0"}, Exit.USAGE, "MILTER_MAX_RECIPIENTS"),
]

# What a message for a user never shows.
LEAKS = re.compile(
    r"Traceback|Errno|Expecting value"
    r"|\((?!ResourceNotFoundException\))[A-Z][a-z]+[A-Z]\w*\)"  # "(EmptyLabel)"; AWS's own error codes may stay
    r"|\b[A-Z][a-z]+(?:[A-Z][a-z]*)+Error\b"  # "EndpointConnectionError"
)


def test_the_leak_detector_sees_what_the_issue_saw() -> None:
    assert LEAKS.search("'a..b' is not a domain name (EmptyLabel)")
    assert LEAKS.search("DynamoDB t: EndpointConnectionError")
    assert LEAKS.search("[Errno 2] No such file or directory") and LEAKS.search("Expecting value: line 1")
    assert not LEAKS.search("DynamoDB t: ResourceNotFoundException: Requested resource not found")


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, list[str]]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def assert_one_line(command: str, err: list[str], says: str) -> None:
    assert len(err) == 1, err
    prefix = f"ipv6gate {command}: " if command else "ipv6gate: "
    assert err[0].startswith(prefix) and says in err[0], err[0]
    assert not LEAKS.search(err[0]), err[0]


@pytest.mark.parametrize(
    ("command", "argv", "environment", "status", "says"), CASES, ids=[" ".join(c[1]) or "-" for c in CASES]
)
def test_every_bad_input_is_one_line_and_its_status(
    files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    argv: tuple[str, ...],
    environment: dict[str, str],
    status: Exit,
    says: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    code, out, err = run(capsys, [files.get(a, a) for a in argv])
    assert code == status, err
    if status is not Exit.AWS:  # evaluate prints a decision that failed open, and says so on stderr
        assert out == ""
    assert_one_line(command, err, says)


def test_every_command_and_status_is_in_the_table() -> None:
    assert {c[1][0] for c in CASES if c[0]} == {"evaluate", "tenants", "trace", "report", "milter"}
    for name in ("evaluate", "tenants", "trace", "report", "milter"):
        assert {Exit.INPUT, Exit.USAGE} <= {c[3] for c in CASES if c[1][:1] == (name,)}, name
    assert {c[3] for c in CASES} == set(Exit) - {Exit.OK}


def test_an_s3_outage_that_let_mail_through_exits_3(
    files: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], keys: world.Keys
) -> None:
    # DKIM decides this one (no SPF pass): its raw message is in a bucket S3 cannot give, so TEMPERROR_ACTION
    # (accept) lets it through unjudged: printed, but no all-clear.
    monkeypatch.setenv("MESSAGE_BUCKET", "no-such-bucket")
    raw = world.sign(world.message(), keys)
    event = world.dump(
        world.ses_event(ip=world.OTHER_IP, raw=raw, message_id="m-s3"), Path(files["EVENT"]).parent / "s3.json"
    )
    code, out, err = run(capsys, ["evaluate", str(event), "--tenants", files["TENANTS"]])
    decision = json.loads(out)
    assert decision["checks"]["dkim"]["result"] == "temperror"
    assert [r["verdict"] for r in decision["recipients"]] == ["accept"]
    assert decision["faults"] == ["message_store"]  # the printed record says it too, not only stderr
    assert code == Exit.AWS
    assert_one_line("evaluate", err, "message_store failed: accepted without its raw message")
    # No message store at all (no MESSAGE_BUCKET, no --message): the same, not an all-clear.
    monkeypatch.delenv("MESSAGE_BUCKET")
    code, out, err = run(capsys, ["evaluate", str(event), "--tenants", files["TENANTS"]])
    assert json.loads(out)["faults"] == ["message_store"] and code == Exit.AWS
    assert_one_line("evaluate", err, "raw message unavailable: no message store configured")
    # The same message with its raw message given decides cleanly: the status was the outage's.
    (Path(files["EVENT"]).parent / "m-s3.eml").write_bytes(raw)
    code, out, err = run(
        capsys, ["evaluate", str(event), "--tenants", files["TENANTS"], "--message", str(event.parent / "m-s3.eml")]
    )
    assert (code, err, json.loads(out)["checks"]["dkim"]["result"]) == (Exit.OK, [], "pass")


def test_an_empty_tenants_file_is_a_warning(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, ["evaluate", files["EVENT"], "--tenants", files["NO_TENANTS"]])
    assert code == Exit.OK and json.loads(out)["recipients"][0]["reply"].startswith("550 5.2.1")
    assert_one_line("evaluate", err, "warning: --tenants")
    assert "lists no tenants: every IPv6 recipient gets 550 5.2.1" in err[0]


def test_removing_a_partner_that_is_not_there_is_a_warning_and_changes_nothing(
    files: dict[str, str], tables: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, ["tenants", "add-partner", "partner.test", "2001:db8:10::/48", "--by", "t"])[0] == Exit.OK
    before = tables.get_item(TableName=TENANTS, Key={"domain": {"S": "partner.test"}})["Item"]
    code, out, err = run(capsys, ["tenants", "remove-partner", "partner.test", "2001:db8:99::/48", "--by", "t"])
    assert code == Exit.OK and out.startswith("partner.test")
    assert_one_line("tenants remove-partner", err, "warning: partner.test has no partner 2001:db8:99::/48")
    assert tables.get_item(TableName=TENANTS, Key={"domain": {"S": "partner.test"}})["Item"] == before
    # The one that is there goes, silently.
    code, out, err = run(capsys, ["tenants", "remove-partner", "partner.test", "2001:db8:10:0::/48", "--by", "t"])
    assert (code, err) == (Exit.OK, [])
    item = tables.get_item(TableName=TENANTS, Key={"domain": {"S": "partner.test"}})["Item"]
    assert "partner_prefixes" not in item


@pytest.mark.parametrize(
    ("stored", "argv"), [("Odd.Example.", ["Odd.Example."]), ("bad_key!", ["--exact", "bad_key!"])]
)
def test_remove_takes_a_stored_key_as_list_shows_it(
    files: dict[str, str], tables: Any, capsys: pytest.CaptureFixture[str], stored: str, argv: list[str]
) -> None:
    tables.put_item(TableName=TENANTS, Item={"domain": {"S": stored}, "ipv6_inbound": {"BOOL": True}})
    code, out, _ = run(capsys, ["tenants", "list"])
    assert code == Exit.OK and any(line.startswith(stored) for line in out.splitlines())
    code, out, err = run(capsys, ["tenants", "remove", *argv])
    assert (code, err) == (Exit.OK, []) and out.startswith(f"removed  {stored}")
    assert "Item" not in tables.get_item(TableName=TENANTS, Key={"domain": {"S": stored}})


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    code, out, _ = run(capsys, ["--version"])
    assert (code, out) == (0, f"ipv6gate {version('ipv6gate')}\n")


HELPS = [
    (),
    ("evaluate",),
    ("tenants",),
    *[("tenants", a) for a in ("enable", "disable", "remove", "status", "list", "add-partner", "remove-partner")],
    ("trace",),
    ("report",),
    ("milter",),
]


@pytest.mark.parametrize("argv", HELPS, ids=[" ".join(h) or "ipv6gate" for h in HELPS])
def test_every_help_has_a_description_its_environment_and_its_exit_statuses(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, _ = run(capsys, [*argv, "--help"])
    lines = out.splitlines()
    assert code == 0 and "``" not in out
    description = lines[lines.index("") + 1]
    assert description and not description.startswith(("positional", "options"))
    environment = " ".join(lines[lines.index("environment:") + 1 : lines.index("exit status:")])
    assert "AWS_REGION" in environment
    if argv == ("milter",):
        from ipv6gate.settings import MilterSettings, env_names

        assert all(f" {name}," in f" {environment}," for name in env_names(MilterSettings))
    statuses = {int(line.split()[0]) for line in lines[lines.index("exit status:") + 1 :] if line[2:3].isdigit()}
    shown = {int(line.split()[0]): " ".join(line.split()[1:]) for line in lines if line[2:3].isdigit()}
    assert {Exit.OK, Exit.INPUT, Exit.USAGE} <= statuses
    assert all(MEANING[Exit(s)].startswith(text[:40]) for s, text in shown.items())
    # Each command lists what it can return: the statuses its rows in the bad-input table show.
    table = {c[3] for c in CASES if c[1][: len(argv)] == argv and c[1]} if argv else set(Exit)
    assert table - {Exit.OK} <= statuses


def test_readme_exit_status_table_is_exits_py() -> None:
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if re.match(r"\| `\d` \|", line)]
    assert [(int(r[3]), r.split("|")[2].strip()) for r in rows] == [(int(s), MEANING[s]) for s in Exit]


@pytest.mark.parametrize(
    ("argv", "status", "line"),
    [
        (["tenants", "--bogus"], 2, "ipv6gate tenants: unrecognized arguments: --bogus (see: ipv6gate tenants --help)"),
        (["trace", ""], 1, "ipv6gate trace: MESSAGE_ID is empty"),
        (["report", "--domain", "1.2.3.4"], 1, "ipv6gate report: --domain: '1.2.3.4' is an IP address, not a domain"),
    ],
)
def test_the_console_script_speaks_the_same(files: dict[str, str], argv: list[str], status: int, line: str) -> None:
    import os

    proc = subprocess.run([CLI, *argv], check=False, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, "", line + "\n")
