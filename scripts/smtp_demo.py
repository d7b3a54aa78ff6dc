"""The SMTP-time demo: every event of a scenario set as a real SMTP session through Postfix and the milter.

A scenario set is a folder laid out like ``events/`` (``make smtp-demo SCENARIOS=<dir>``):

1. starts moto server (the template's tables; the set's ``tenants.json`` in the tenants table) and
   Knot DNS (the set's ``zones/``) on loopback, as ``make demo`` does;
2. starts ``ipv6gate milter`` with the environment the template gives the gate function (TENANTS_TABLE,
   TRACE_TABLE, DNS_SERVERS, AWS_ENDPOINT_URL, the set's ``settings.json``): one control plane;
3. starts a private Postfix (own config and queue, ``127.0.0.1`` and ``[::1]`` on a free port, accepted
   mail discarded) with the milter as its ``smtpd_milters``;
4. for each event: connects, presents the event's client address and HELO with XCLIENT, sends its
   MAIL FROM and recipients and the message (``<event>.eml`` when there is one, else the event's
   own headers), and prints the reply each recipient got in the session;
5. compares with the set's ``expected.json`` (per recipient; a monitor tenant's would-be reply is read
   from the milter's decision log line) and checks each decision reached the trace table.

Exit status 0 when every event matches, 1 on a mismatch, 2 when the set or the stack is unusable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.postfix import MilterProcess, SmtpResult
    from devstack.sam_template import FunctionSpec
    from devstack.scenarios import ScenarioSet

REPO = Path(__file__).resolve().parents[1]
# SES's own headers: not part of the message the sender transmitted.
_SES_ADDED = ("received", "return-path", "x-ses-")


def session_of(event: dict[str, Any], region: str) -> dict[str, Any]:
    """What the sending server said in SES's session: client address, HELO, MAIL FROM, RCPT TOs."""
    from ipv6gate.mail.event import parse_event
    from ipv6gate.mail.source import Source, find_source

    mail = parse_event(event)
    source = find_source(mail.headers, (f"inbound-smtp.{region}.amazonaws.com",), mail.message_id)
    if not isinstance(source, Source):
        raise ValueError(f"no client address in the event: {source.reason}")
    return {"ip": str(source.ip), "helo": source.helo, "mail_from": mail.mail_from, "recipients": mail.recipients}


def message_of(scenarios: ScenarioSet, name: str, event: dict[str, Any]) -> bytes:
    eml = scenarios.directory / Path(name).with_suffix(".eml")
    if eml.exists():
        return eml.read_bytes()
    headers = event["Records"][0]["ses"]["mail"].get("headers", [])
    lines = [f"{h['name']}: {h['value']}" for h in headers if not h["name"].lower().startswith(_SES_ADDED)]
    return ("\r\n".join(lines) + "\r\n\r\nThis message was sent by make smtp-demo.\r\n").encode()


def replies_of(result: SmtpResult, decision: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each recipient's reply as heard in the SMTP session, in expected.json's shape."""
    logged = {r["recipient"]: r for r in (decision or {}).get("recipients", [])}
    rows = []
    for rcpt, at_rcpt in result.rcpt.items():
        # Accepted at RCPT: the end-of-data reply is this recipient's answer.
        code, text = result.data if 200 <= at_rcpt[0] < 300 and result.data is not None else at_rcpt
        row: dict[str, Any] = {"recipient": rcpt, "reply": None if code < 300 else f"{code} {text}", "monitor": False}
        if logged.get(rcpt, {}).get("monitor"):
            row |= {"monitor": True, "would_reply": logged[rcpt].get("would_reply")}
        rows.append(row)
    return rows


def run(template: dict[str, Any], spec: FunctionSpec, scenarios: ScenarioSet, verbose: bool) -> int:
    from devstack import sam_template
    from devstack.moto_stack import MotoStack
    from devstack.postfix import MilterProcess, PostfixInstance, send
    from devstack.scenarios import compare, describe, report_mismatches

    stack = MotoStack(scenarios.zones, template, region=scenarios.region, log=lambda t: print(f"  {t}"))
    problems: dict[str, list[str]] = {}
    with stack:
        env = sam_template.container_environment(
            spec, {**stack.overrides(), **scenarios.environment}, region=scenarios.region
        )
        for line in stack.seed(env, scenarios.directory):
            print(f"  put {line}")
        env["MILTER_AUTHSERV_ID"] = "mx.ipv6gate.test"
        with MilterProcess(env, unix=True) as milter, PostfixInstance(milter.postfix_address) as postfix:
            print(f"  ipv6gate milter on {milter.postfix_address}; postfix on 127.0.0.1:{postfix.port} and [::1]")
            print(f"  TENANTS_TABLE={env['TENANTS_TABLE']} TRACE_TABLE={env.get('TRACE_TABLE')}\n")
            print(f"{'event':<30} {'client ip':<17} {'check':<8} {'recipient':<20} reply in the SMTP session")
            print("-" * 140)
            for name in scenarios.events:
                event = scenarios.event(name)
                smtp = session_of(event, scenarios.region)
                started = time.monotonic()
                result = send(
                    postfix.port,
                    client_ip=smtp["ip"],
                    helo=smtp["helo"],
                    mail_from=smtp["mail_from"],
                    recipients=smtp["recipients"],
                    message=message_of(scenarios, name, event),
                )
                decision = _decision(milter, smtp["ip"], before=len(milter.decisions()) - 1)
                rows = replies_of(result, decision)
                want = scenarios.expected.get(name)
                found = (
                    ["not in expected.json"]
                    if want is None
                    else compare({**want, "disposition": None}, None, {"client_ip": smtp["ip"], "recipients": rows})
                )
                problems[name] = found
                for i, row in enumerate(rows):
                    cells = (name, smtp["ip"], "ok" if not found else "MISMATCH") if i == 0 else ("", "", "")
                    print(f"{cells[0]:<30} {cells[1]:<17} {cells[2]:<8} {row['recipient']:<20} {describe(row)}")
                if verbose:
                    print(f"    {time.monotonic() - started:.3f} s; decision: {decision}")
            if any(problems.values()) and verbose:
                print(milter.output()[-3000:])
                print(postfix.maillog()[-3000:])
        traced = stack.client("dynamodb").scan(TableName=env["TRACE_TABLE"], Select="COUNT")["Count"]
    failed = report_mismatches(problems)
    print(f"\n{len(problems)} SMTP sessions; the trace table holds {traced} items written by the milter")
    if failed:
        return 1
    print(f"every reply matches {scenarios.directory / 'expected.json'}")
    return 0


def _decision(milter: MilterProcess, ip: str, before: int, timeout: float = 5.0) -> dict[str, Any] | None:
    """The milter's decision log line for this session (one without DATA is logged once the client quits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in milter.decisions()[max(before, 0) :] if d.get("client_ip") == ip]
        if found:
            return found[-1]
        time.sleep(0.05)
    return None


def main(argv: list[str] | None = None) -> int:
    from devstack import sam_template, scenarios

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenarios", type=Path, default=scenarios.EVENTS_DIR, help="scenario set (like events/)")
    parser.add_argument("--verbose", "-v", action="store_true", help="print each session's time and decision")
    args = parser.parse_args(argv)
    try:
        template, spec, chosen = sam_template.function_and_scenarios(args.scenarios)
    except (scenarios.ScenarioError, sam_template.TemplateError) as exc:
        print(f"smtp-demo: {exc}", file=sys.stderr)
        return 2
    print(f"scenario set: {chosen.directory} ({len(chosen.events)} events, region {chosen.region})")
    try:
        return run(template, spec, chosen, args.verbose)
    except KeyboardInterrupt:
        print("\ninterrupted; Postfix, the milter and the local stack were stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"smtp-demo: could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
