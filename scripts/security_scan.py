"""Security scan of template.yaml: checkov on the template and on its SAM translation, plus cfn-lint.

1. checkov (pinned: ``CHECKOV_VERSION``) runs from its own virtual environment, ``.venv-security``,
   because its many dependencies would conflict with the project's. The venv is created here when it
   is missing or holds another version, with the Python 3.13 that ``scripts/find-python313.sh`` finds.
2. checkov scans ``template.yaml`` as written (it understands ``AWS::Serverless::*`` only in part),
   then the template as the SAM translator expands it (offline, as ``tests/template`` does): the
   generated functions, roles and layer versions. In that copy every resource's ``Condition`` is
   dropped, so optional resources (the rule-set activator) are scanned whatever the parameters say,
   and the inline skips written on a SAM resource also apply to what it generates (``GateFunction``
   -> ``GateFunctionRole``).
3. cfn-lint (the project's, from the running interpreter's venv) checks ``template.yaml`` with its
   informational rules too (``--include-checks I``).

A finding is justified only by an inline skip with a reason in the template::

    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_116
            comment: why this check does not apply here

Exit status 0 when every checkov finding is fixed or justified, every skip has a reason and still
matches a check checkov runs on that resource, and cfn-lint prints nothing; 1 otherwise; 2 when the
scan itself could not run. ``make security`` runs this; ``--json PATH`` also writes the report.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHECKOV_VERSION = "3.3.30"
REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
SECURITY_VENV = Path(os.environ.get("IPV6GATE_SECURITY_VENV", str(REPO / ".venv-security")))
MIN_REASON_CHARS = 20  # a skip's comment must say why, not just "ok"
REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"


class ScanError(RuntimeError):
    """The scan could not run (no Python 3.13, pip failed, checkov crashed, ...)."""


@dataclass(frozen=True)
class Finding:
    scan: str  # "template" or "sam-translated"
    check_id: str
    check_name: str
    resource: str  # "<Type>.<LogicalId>"
    status: str  # "failed" or "skipped"
    reason: str = ""  # the skip's comment


@dataclass
class Report:
    checkov_version: str = ""
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unjustified findings, bad or stale skips
    cfn_lint: list[str] = field(default_factory=list)  # cfn-lint's output lines

    @property
    def ok(self) -> bool:
        return not self.problems and not self.cfn_lint

    def to_dict(self) -> dict[str, Any]:
        return {
            "checkov_version": self.checkov_version,
            "summaries": self.summaries,
            "findings": [asdict(f) for f in self.findings],
            "problems": self.problems,
            "cfn_lint": self.cfn_lint,
            "ok": self.ok,
        }


# -- the checkov venv ---------------------------------------------------------------------------------


def _checkov_bin(venv: Path) -> Path:
    return venv / "bin" / "checkov"


def installed_checkov_version(venv: Path = SECURITY_VENV) -> str | None:
    exe = _checkov_bin(venv)
    if not exe.is_file():
        return None
    try:
        res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120, check=False)
    except OSError:
        return None
    return res.stdout.strip() if res.returncode == 0 else None


@contextlib.contextmanager
def _venv_lock(venv: Path) -> Iterator[None]:
    """One creator at a time (``make security`` and the test may race on a fresh machine)."""
    digest = hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:16]
    with (Path(tempfile.gettempdir()) / f"ipv6gate-security-venv-{digest}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_checkov(venv: Path = SECURITY_VENV, log: Any = print) -> Path:
    """The checkov executable of ``venv``, after creating the venv or installing the pin if needed."""
    if installed_checkov_version(venv) == CHECKOV_VERSION:
        return _checkov_bin(venv)
    with _venv_lock(venv):
        if installed_checkov_version(venv) == CHECKOV_VERSION:  # another process just made it
            return _checkov_bin(venv)
        found = subprocess.run(
            [str(REPO / "scripts" / "find-python313.sh")], capture_output=True, text=True, check=False
        )
        python313 = found.stdout.strip()
        if found.returncode != 0 or not python313:
            raise ScanError(found.stderr.strip() or "no Python 3.13 interpreter found")
        started = time.monotonic()
        if not (venv / "bin" / "python").is_file():
            log(f"creating {venv.name} with {python313}")
            _run([python313, "-m", "venv", str(venv)], "python -m venv")
        log(f"installing checkov=={CHECKOV_VERSION} into {venv.name} (about a minute)")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, f"checkov=={CHECKOV_VERSION}"], "pip install checkov")
        got = installed_checkov_version(venv)
        if got != CHECKOV_VERSION:
            raise ScanError(f"{venv.name}: checkov --version says {got!r}, expected {CHECKOV_VERSION}")
        log(f"checkov {got} ready in {time.monotonic() - started:.0f} s")
    return _checkov_bin(venv)


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise ScanError(f"{what} failed (exit {res.returncode}):\n{res.stderr[-3000:]}{res.stdout[-2000:]}")


# -- the template and its SAM translation -------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    from devstack.sam_template import load_template

    return load_template(path)


def skip_entries(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A resource's ``Metadata.checkov.skip`` list (entries with an ``id`` and a ``comment``)."""
    skips = ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or []
    return [entry for entry in skips if isinstance(entry, Mapping)]


def inline_skips(template: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Logical id -> {check id: comment} from each resource's inline skips."""
    out: dict[str, dict[str, str]] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        for entry in skip_entries(resource):
            out.setdefault(logical_id, {})[str(entry.get("id", ""))] = " ".join(str(entry.get("comment", "")).split())
    return out


def sam_translate(template_path: Path) -> dict[str, Any]:
    """The template expanded by the SAM translator, offline (no IAM look-ups, local paths as S3 URIs)."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = load(template_path)
    for resource in template["Resources"].values():
        props = resource.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://ipv6gate-security-scan/artifact.zip"  # what `sam package` would write
    session = boto3.session.Session(region_name=REGION)
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=session)
    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"}
    try:
        out: dict[str, Any] = translator.translate(
            sam_template=template, parameter_values=pseudo, get_managed_policy_map=lambda: {}
        )
    except InvalidDocumentException as exc:
        raise ScanError("SAM translation failed: " + "; ".join(str(c) for c in exc.causes)) from None
    return out


def prepare_translated(source: Mapping[str, Any], translated: dict[str, Any]) -> dict[str, Any]:
    """Scan every resource whatever its condition; carry each SAM resource's skips to what it generated."""
    sam_ids = sorted(
        (k for k, r in source["Resources"].items() if str(r.get("Type", "")).startswith("AWS::Serverless::")),
        key=len,
        reverse=True,
    )
    skips_by_source = {k: skip_entries(r) for k, r in source["Resources"].items()}
    for logical_id, resource in translated["Resources"].items():
        resource.pop("Condition", None)
        origin = next((s for s in sam_ids if logical_id.startswith(s)), None)
        if origin is None or not skips_by_source.get(origin):
            continue
        metadata = resource.setdefault("Metadata", {})
        own = metadata.setdefault("checkov", {}).setdefault("skip", [])
        known = {entry.get("id") for entry in own if isinstance(entry, Mapping)}
        own.extend(e for e in skips_by_source[origin] if e.get("id") not in known)
    return translated


# -- running the tools ------------------------------------------------------------------------------------------


def run_checkov(checkov: Path, path: Path) -> dict[str, Any]:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "WARNING", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": ""}
    cmd = [str(checkov), "--file", str(path), "--framework", "cloudformation", "--skip-download", "--output", "json"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=path.parent, timeout=600, check=False)
    try:
        data: Any = json.loads(res.stdout)
    except ValueError:
        tail = f"{res.stderr[-3000:]}{res.stdout[-1000:]}"
        raise ScanError(f"checkov gave no JSON (exit {res.returncode}):\n{tail}") from None
    if isinstance(data, list):  # several check types: we asked for one
        data = next((d for d in data if d.get("check_type") == "cloudformation"), {})
    if "results" not in data:  # nothing to check: checkov prints only a summary
        data = {"results": {}, "summary": data}
    if res.returncode not in (0, 1):
        raise ScanError(f"checkov exited {res.returncode}:\n{res.stderr[-3000:]}")
    return dict(data)


def run_cfn_lint(template_path: Path) -> list[str]:
    """cfn-lint's findings (informational rules included), one line each; [] when clean."""
    exe = Path(sys.executable).parent / "cfn-lint"
    cmd = [str(exe), "--include-checks", "I", "--format", "parseable", "--", str(template_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    if res.returncode != 0 and not res.stdout.strip():
        raise ScanError(f"cfn-lint failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return [line for line in res.stdout.splitlines() if line.strip()]


def _findings(scan: str, data: Mapping[str, Any]) -> list[Finding]:
    results = data.get("results") or {}
    out = []
    for key, status in (("failed_checks", "failed"), ("skipped_checks", "skipped")):
        for check in results.get(key) or []:
            reason = " ".join(str((check.get("check_result") or {}).get("suppress_comment") or "").split())
            out.append(Finding(scan, check["check_id"], check.get("check_name", ""), check["resource"], status, reason))
    return out


def scan(template_path: Path = TEMPLATE, *, venv: Path = SECURITY_VENV, log: Any = print) -> Report:
    report = Report()
    checkov = ensure_checkov(venv, log)
    report.checkov_version = installed_checkov_version(venv) or ""
    source = load(template_path)
    declared = inline_skips(source)
    with tempfile.TemporaryDirectory(prefix="ipv6gate-security-") as tmp:
        translated_path = Path(tmp) / "template.sam-translated.json"
        translated = prepare_translated(source, sam_translate(template_path))
        translated_path.write_text(json.dumps(translated, indent=1), encoding="utf-8")
        for name, path in (("template", template_path), ("sam-translated", translated_path)):
            data = run_checkov(checkov, path)
            report.summaries[name] = dict(data.get("summary") or {})
            if report.summaries[name].get("parsing_errors"):
                report.problems.append(f"{name}: checkov could not parse {path.name}")
            report.findings += _findings(name, data)
    for f in report.findings:
        where = f"[{f.scan}] {f.check_id} {f.resource}"
        if f.status == "failed":
            report.problems.append(f"{where}: {f.check_name} - fix it, or add an inline skip with the reason")
        elif len(f.reason) < MIN_REASON_CHARS:
            report.problems.append(f"{where}: skipped without a reason (comment of {MIN_REASON_CHARS}+ characters)")
    # A skip must still match a check checkov ran on that resource, in either scan (a conditional
    # resource appears only in the translated one): a typo or a fixed finding leaves a stale skip.
    skipped = {(f.resource.rsplit(".", 1)[-1], f.check_id) for f in report.findings if f.status == "skipped"}
    for logical_id, checks in sorted(declared.items()):
        for check_id in sorted(checks):
            if (logical_id, check_id) not in skipped:
                report.problems.append(f"stale skip {check_id} on {logical_id}: checkov runs no such check on it")
    report.cfn_lint = run_cfn_lint(template_path)
    return report


COUNTS = (("resource_count", "resources"), ("passed", "passed"), ("failed", "failed"), ("skipped", "justified"))


def print_report(report: Report) -> None:
    for name, summary in report.summaries.items():
        counts = ", ".join(f"{summary.get(k, 0)} {label}" for k, label in COUNTS)
        print(f"checkov {report.checkov_version} {name}: {counts}")
    for f in sorted(report.findings, key=lambda f: (f.check_id, f.resource, f.scan)):
        state = "FAILED" if f.status == "failed" else "justified"
        print(f"  {state:<9} {f.check_id:<12} {f.resource:<50} [{f.scan}]")
    if report.cfn_lint:
        print("cfn-lint --include-checks I: findings")
        for line in report.cfn_lint:
            print(f"  {line}")
    else:
        print("cfn-lint --include-checks I: clean")
    for problem in report.problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    print("security scan: " + ("ok" if report.ok else f"{len(report.problems) + len(report.cfn_lint)} problem(s)"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="template to scan (default: template.yaml)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        report = scan(args.template.resolve())
    except (ScanError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"security scan could not run: {exc}", file=sys.stderr)
        return 2
    print_report(report)
    print(f"({time.monotonic() - started:.1f} s)")
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
