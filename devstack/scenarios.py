"""Scenario sets (folders laid out like ``events/``) and how a run of one is judged and shown.

Shared by ``make demo`` (``scripts/demo.py``: the handler in this Python) and ``make local``
(``scripts/local.py``: the built artifact in the local Lambda container):

- ``load_scenarios`` reads and checks a set: ``*.json`` SES events, ``<event>.eml`` raw messages,
  ``zones/`` (served by Knot), ``tenants.json``, ``expected.json`` and optionally ``settings.json``
  (``{"region": "us-east-1", "environment": {"PTR_MODE": "fcrdns"}}``: the region SES received the
  events in, and gate settings the set needs). Bad input raises ``ScenarioError`` with one line.
- ``Outcome`` is what one event did (response, decision log lines, handler error), however it ran;
  ``judge`` compares it with ``expected.json``; ``print_table`` prints the per-recipient table and
  returns the problems per event.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"  # the scenario set make demo runs by default
NOT_EVENTS = frozenset({"env.json", "expected.json", "tenants.json", "settings.json"})
DEFAULT_REGION = "eu-west-1"  # where the events in events/ were received
# Variables the local stack sets itself (local resources and servers); a set cannot change them.
STACK_VARIABLES = frozenset(
    {"TENANTS_TABLE", "MESSAGE_BUCKET", "MESSAGE_PREFIX", "DNS_SERVERS", "BOUNCE_QUEUE_URL", "TRACE_TABLE"}
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]$")


class ScenarioError(ValueError):
    """A scenario set cannot be used; the message names the file and what is wrong (one line)."""


@dataclass(frozen=True)
class ScenarioSet:
    directory: Path
    events: list[str]  # file names, sorted
    expected: dict[str, Any]
    region: str = DEFAULT_REGION
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def zones(self) -> Path:
        return self.directory / "zones"

    def event(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.directory / name).read_text(encoding="utf-8"))
        return data


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read it ({exc})") from None


def load_scenarios(directory: Path, settable: Sequence[str]) -> ScenarioSet:
    """Read and check a scenario set; ``settable`` are the setting names ``settings.json`` may use."""
    if not directory.is_dir():
        raise ScenarioError(f"scenario set {directory}: no such directory")
    for required in ("expected.json", "tenants.json"):
        if not (directory / required).is_file():
            raise ScenarioError(f"scenario set {directory}: {required} is missing")
    if not (directory / "zones").is_dir() or not any((directory / "zones").glob("*.zone")):
        raise ScenarioError(f"scenario set {directory}: zones/ with <origin>.zone files is missing")
    expected = _json(directory / "expected.json")
    if not isinstance(expected, dict) or not all(
        isinstance(v, dict) and {"disposition", "recipients"} <= set(v) for v in expected.values()
    ):
        raise ScenarioError(
            f"{directory / 'expected.json'}: must map each event file to {{disposition, client_ip, recipients}}"
        )
    tenants = _json(directory / "tenants.json")
    if not isinstance(tenants, list) or not all(isinstance(t, dict) and "domain" in t for t in tenants):
        raise ScenarioError(f"{directory / 'tenants.json'}: must be a list of tenant objects with a domain")
    events = event_files(directory)
    if not events:
        raise ScenarioError(f"scenario set {directory}: no event files (*.json)")
    for name in events:
        event = _json(directory / name)
        try:
            event["Records"][0]["ses"]["mail"]["messageId"]
        except (KeyError, IndexError, TypeError):
            raise ScenarioError(f"{directory / name}: not an SES event (no Records[0].ses.mail.messageId)") from None
    region, environment = DEFAULT_REGION, dict[str, str]()
    if (directory / "settings.json").exists():
        region, environment = _settings(directory / "settings.json", settable)
    return ScenarioSet(directory, events, expected, region, environment)


def _settings(path: Path, settable: Sequence[str]) -> tuple[str, dict[str, str]]:
    data = _json(path)
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: must be an object with region and/or environment")
    unknown_keys = set(data) - {"region", "environment"}
    if unknown_keys:
        raise ScenarioError(f"{path}: unknown key {sorted(unknown_keys)[0]!r} (only region and environment)")
    region = data.get("region", DEFAULT_REGION)
    if not isinstance(region, str) or not _REGION.match(region):
        raise ScenarioError(f"{path}: region {region!r} is not an AWS region name like us-east-1")
    environment = data.get("environment", {})
    if not isinstance(environment, dict):
        raise ScenarioError(f"{path}: environment must be an object of setting names to strings")
    for name, value in environment.items():
        if name in STACK_VARIABLES:
            raise ScenarioError(f"{path}: setting {name} is set by the local stack, not by a scenario set")
        if name not in settable:
            raise ScenarioError(
                f"{path}: unknown setting {name!r} (the function declares {', '.join(sorted(settable))})"
            )
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ScenarioError(f"{path}: setting {name} must be a string or a number")
    return region, {k: str(v) for k, v in environment.items()}


def event_files(directory: Path = EVENTS_DIR) -> list[str]:
    """Every SES event file of a scenario set (``*.json`` but its env/expected/tenants/settings), sorted."""
    return sorted(p.name for p in directory.glob("*.json") if p.name not in NOT_EVENTS)


def load_event(name: str, directory: Path = EVENTS_DIR) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / name).read_text(encoding="utf-8"))
    return data


def message_id_of(event: Mapping[str, Any]) -> str:
    return str(event["Records"][0]["ses"]["mail"]["messageId"])


def stored_messages(directory: Path = EVENTS_DIR) -> dict[str, bytes]:
    """messageId -> raw message, for every ``<stem>.eml`` next to a ``<stem>.json`` event."""
    out: dict[str, bytes] = {}
    for eml in sorted(directory.glob("*.eml")):
        event = eml.with_suffix(".json")
        if not event.is_file():
            raise ScenarioError(f"{eml}: no {event.name} to take the messageId from")
        out[message_id_of(load_event(event.name, directory))] = eml.read_bytes()
    return out


# -- judging --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one event did: the function's response, its decision log lines, an error if it raised."""

    name: str
    response: Any
    decisions: list[dict[str, Any]]  # the "decision" log lines (normally exactly one)
    error: str | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # every JSON line it printed

    @property
    def disposition(self) -> str | None:
        return self.response.get("disposition") if isinstance(self.response, dict) else None

    @property
    def decision(self) -> dict[str, Any] | None:
        return self.decisions[0]["decision"] if len(self.decisions) == 1 else None


def describe(row: Mapping[str, Any]) -> str:
    if row.get("monitor"):
        return f"monitor: would {row.get('would_reply')}"
    return str(row["reply"]) if row.get("reply") else "accept"


def compare(expected: Mapping[str, Any], disposition: str | None, decision: Mapping[str, Any] | None) -> list[str]:
    """Differences between the expectation and what the function returned and logged."""
    problems: list[str] = []
    if disposition != expected["disposition"]:
        problems.append(f"disposition {disposition} != expected {expected['disposition']}")
    if decision is None:
        return [*problems, "no decision log line"]
    if "client_ip" in expected and decision.get("client_ip") != expected["client_ip"]:
        problems.append(f"client_ip {decision.get('client_ip')} != expected {expected['client_ip']}")
    got = {r["recipient"]: describe(r) for r in decision.get("recipients", [])}
    want = {r["recipient"]: describe(r) for r in expected["recipients"]}
    for rcpt in sorted(set(got) | set(want)):
        if got.get(rcpt) != want.get(rcpt):
            problems.append(f"{rcpt}: {got.get(rcpt, '(missing)')} != expected {want.get(rcpt, '(none)')}")
    return problems


def judge(outcome: Outcome, want: Mapping[str, Any] | None) -> list[str]:
    problems = ["not in expected.json"] if want is None else compare(want, outcome.disposition, outcome.decision)
    if outcome.error:
        problems.append(f"handler error: {outcome.error}")
    if len(outcome.decisions) != 1:
        problems.append(f"{len(outcome.decisions)} decision log lines, expected 1")
    return problems


def print_table(
    outcomes: Sequence[Outcome],
    expected: Mapping[str, Any],
    *,
    verbose: bool = False,
    out: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Print one row per recipient; return the problems found per event file."""
    out(f"{'event':<30} {'client ip':<17} {'disposition':<14} {'check':<8} {'recipient':<18} reply")
    out("-" * 140)
    problems: dict[str, list[str]] = {}
    for outcome in outcomes:
        problems[outcome.name] = judge(outcome, expected.get(outcome.name))
        decision = outcome.decisions[0]["decision"] if outcome.decisions else {}
        disposition = outcome.disposition or "?"
        verdict = "ok" if not problems[outcome.name] else "MISMATCH"
        rows = decision.get("recipients") or [{"recipient": "?", "reply": None}]
        for i, row in enumerate(rows):
            cells = (outcome.name, str(decision.get("client_ip", "?")), disposition, verdict) if i == 0 else ("",) * 4
            out(f"{cells[0]:<30} {cells[1]:<17} {cells[2]:<14} {cells[3]:<8} {row['recipient']:<18} {describe(row)}")
        if verbose:
            for record in outcome.records:
                out(f"    {json.dumps(record, separators=(',', ':'))}")
    for name in sorted(set(expected) - set(problems)):
        problems[name] = ["in expected.json but no such event file"]
    return problems


def report_mismatches(problems: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Print ``MISMATCH <event>: <problem>`` on stderr for each problem; return the events that have any."""
    failed = {name: list(found) for name, found in sorted(problems.items()) if found}
    for name, found in failed.items():
        for problem in found:
            print(f"MISMATCH {name}: {problem}", file=sys.stderr)
    return failed
