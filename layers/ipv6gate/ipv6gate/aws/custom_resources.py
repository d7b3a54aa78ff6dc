"""The stack's CloudFormation custom resources (``functions/stack_setup``): what CloudFormation cannot do by itself.

Four ``Custom::`` types, one function (README "Deploy"):

- ``Custom::ReceiptRuleSetTarget`` names the rule set the gate's rule goes into: the one given, or
  (empty name) the set active when the stack is created, kept on later updates. It checks the set
  exists and changes nothing.
- ``Custom::TenantSeed`` gives every domain the rule covers a tenant item in monitor mode unless
  it has one (conditional put), so a first deploy rejects nothing. Never overwrites, never deletes.
- ``Custom::ActiveReceiptRuleSet`` activates the rule set and remembers, in its physical id, what
  was active before; on delete it restores that only while its own set is still the active one.
- ``Custom::MessageBucketDrain`` empties the message bucket on delete. The gate's rule depends on it,
  so CloudFormation deletes the rule first (SES stops writing), then empties the bucket, then deletes
  it: ``sam delete`` alone rolls back, with no window in which mail refills the bucket.

Each request gets exactly one response (CloudFormation's protocol: a PUT of a JSON document to the
pre-signed ``ResponseURL``); a failure is ``FAILED`` with a one-line reason, shown as the stack event.
"""

from __future__ import annotations

import json
import math
import re
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ipv6gate.aws.s3 import BucketNotEmptied
from ipv6gate.decision.tenants import Mode, rule_coverage, tenant_domain

# CloudFormation refuses response documents over 4 KiB; the reason is the only long field.
_MAX_REASON = 1000
# The physical id of a resource whose Create failed: its Delete (rollback) must do nothing.
NOT_CREATED = "not-created"
_TARGET = "rule-set:"
_ACTIVATION_UNCHANGED = "active-rule-set:unchanged"
_ACTIVATION_PREVIOUS = "active-rule-set:previous="
# SES's names of rule sets and rules (template.yaml's AllowedPattern is the same).
SES_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
_DRAIN = "drain:"
_DRAIN_PASSES = 3
_DRAIN_ANSWER_SECONDS = 15.0  # what the drain leaves of the function's time to answer CloudFormation


class StackSetupError(Exception):
    """A request the custom resource refuses; the message is the stack event's one-line reason."""


class RuleSets(Protocol):
    @property
    def region(self) -> str: ...
    def active_rule_set(self) -> str | None: ...
    def rule_set_exists(self, name: str) -> bool: ...
    def activate(self, name: str | None) -> None: ...
    def domain_identities(self) -> list[str]: ...


class Buckets(Protocol):
    def empty(self, bucket: str, out_of_time: Callable[[], bool] = ...) -> int: ...


class TenantSeeder(Protocol):
    def seed(self, domain: str, *, mode: Mode, by: str, now: str) -> bool: ...


class Log(Protocol):
    def info(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None: ...
    def error(self, msg: object, *args: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    physical_id: str
    data: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StackSetup:
    rules: RuleSets
    tenants: Callable[[str], TenantSeeder]  # table name -> seeder
    now: Callable[[], str]
    log: Log
    buckets: Buckets

    def handle(self, event: Mapping[str, Any], seconds_left: Callable[[], float] | None = None) -> dict[str, Any]:
        """The response document for one request; never raises. ``seconds_left``: the invocation's
        (Lambda's context), so that a long task still answers CloudFormation before the function ends."""
        request = str(event.get("RequestType"))
        old_id = str(event.get("PhysicalResourceId") or NOT_CREATED)
        try:
            outcome = self._dispatch(event, request, seconds_left or (lambda: math.inf))
            status, reason = "SUCCESS", ""
        except Exception as exc:  # every failure must still answer CloudFormation
            known: tuple[type[Exception], ...] = (StackSetupError, ValueError, *_adapter_errors())
            reason = str(exc) if isinstance(exc, known) else f"{type(exc).__name__}: {exc}"
            reason = " ".join(reason.split())[:_MAX_REASON] or type(exc).__name__
            self.log.error("custom resource failed", extra={"request": request, "reason": reason})
            # A failed Create gets a marker its rollback Delete recognises; Update and Delete keep their id.
            outcome, status = Outcome(NOT_CREATED if request == "Create" else old_id), "FAILED"
        return {
            "Status": status,
            "Reason": reason or "done",
            "PhysicalResourceId": outcome.physical_id,
            "StackId": event.get("StackId"),
            "RequestId": event.get("RequestId"),
            "LogicalResourceId": event.get("LogicalResourceId"),
            "NoEcho": False,
            "Data": outcome.data,
        }

    def _dispatch(self, event: Mapping[str, Any], request: str, seconds_left: Callable[[], float]) -> Outcome:
        if request not in ("Create", "Update", "Delete"):
            raise StackSetupError(f"unknown RequestType {request[:40]!r}")
        kind = str(event.get("ResourceType"))
        props = event.get("ResourceProperties") or {}
        old_props = event.get("OldResourceProperties") or {}
        old_id = str(event.get("PhysicalResourceId") or NOT_CREATED)
        if kind == "Custom::ReceiptRuleSetTarget":
            return self._target(request, props, old_props, old_id)
        if kind == "Custom::TenantSeed":
            return seed_tenants(self, request, props)
        if kind == "Custom::ActiveReceiptRuleSet":
            return self._activation(request, props, old_id)
        if kind == "Custom::MessageBucketDrain":
            return drain_bucket(self, request, props, old_id, seconds_left)
        raise StackSetupError(f"unknown custom resource type {kind[:60]!r}")

    # ------------------------------------------------------------------ rule-set target
    def _target(self, request: str, props: Mapping[str, Any], old_props: Mapping[str, Any], old_id: str) -> Outcome:
        if request == "Delete":
            return Outcome(old_id)  # names a set; owns nothing
        wanted = str(props.get("RuleSetName", "")).strip()
        if wanted and not SES_NAME.fullmatch(wanted):
            raise StackSetupError(
                f"RuleSetName {wanted[:70]!r} is not an SES rule set name: 1-63 ASCII letters, digits, _ and -, "
                "starting and ending with a letter or digit"
            )
        if not wanted and request == "Update" and old_id.startswith(_TARGET) and not old_props.get("RuleSetName"):
            # "the active set" was resolved once, at create: a later update never moves the rule.
            wanted = old_id.removeprefix(_TARGET)
        if not wanted:
            active = self.rules.active_rule_set()
            if active is None:
                raise StackSetupError(
                    f"no SES receipt rule set is active in {self.rules.region}: name the set for the gate's rule "
                    "with RuleSetName, or deploy with RuleSetMode=own"
                )
            wanted = active
        elif not self.rules.rule_set_exists(wanted):
            raise StackSetupError(
                f"SES receipt rule set {wanted[:64]!r} does not exist in {self.rules.region}: "
                "check RuleSetName (or leave it empty for the active set)"
            )
        self.log.info("gate rule goes into rule set", extra={"rule_set": wanted})
        return Outcome(_TARGET + wanted, {"RuleSetName": wanted})

    # ------------------------------------------------------------------ activation
    def _activation(self, request: str, props: Mapping[str, Any], old_id: str) -> Outcome:
        ours = str(props.get("RuleSetName", "")).strip()
        if request == "Delete":
            return self._deactivate(ours, old_id)
        if not ours:
            raise StackSetupError("ActiveReceiptRuleSet: RuleSetName missing")
        if not SES_NAME.fullmatch(ours):
            raise StackSetupError(f"ActiveReceiptRuleSet: RuleSetName {ours[:70]!r} is not an SES rule set name")
        active = self.rules.active_rule_set()
        if request == "Update" and old_id.startswith(_ACTIVATION_PREVIOUS):
            # Keep the id (a new one would make CloudFormation delete the old, restoring too early)
            # and the set that was active before this stack's first activation.
            if active != ours:
                self.rules.activate(ours)
            return Outcome(old_id)
        if active == ours:
            return Outcome(_ACTIVATION_UNCHANGED)  # it was already active: nothing to revert later
        self.rules.activate(ours)
        self.log.info("rule set activated", extra={"rule_set": ours, "previous": active})
        return Outcome(_ACTIVATION_PREVIOUS + (active or ""))

    def _deactivate(self, ours: str, old_id: str) -> Outcome:
        if not old_id.startswith(_ACTIVATION_PREVIOUS):
            return Outcome(old_id)  # this resource activated nothing
        active = self.rules.active_rule_set()
        if active != ours:
            self.log.info("active rule set left as it is", extra={"active": active, "ours": ours})
            return Outcome(old_id)
        previous = old_id.removeprefix(_ACTIVATION_PREVIOUS) or None
        if previous and not self.rules.rule_set_exists(previous):
            self.log.warning("previously active rule set is gone; deactivating", extra={"previous": previous})
            previous = None
        self.rules.activate(previous)
        self.log.info("active rule set restored", extra={"active": previous})
        return Outcome(old_id)


def drain_bucket(
    setup: StackSetup, request: str, props: Mapping[str, Any], old_id: str, seconds_left: Callable[[], float]
) -> Outcome:
    """``Custom::MessageBucketDrain``: on delete (after the gate's rule is gone), empty the message bucket."""
    bucket = str(props.get("BucketName", "")).strip()
    if request != "Delete":
        if not bucket:
            raise StackSetupError("MessageBucketDrain: BucketName missing")
        # The id names the bucket: a new bucket is a new id, and the old id's Delete empties the old one.
        return Outcome(_DRAIN + bucket)
    if not old_id.startswith(_DRAIN):
        return Outcome(old_id)  # its create failed: it names no bucket
    bucket = old_id.removeprefix(_DRAIN)
    # The gate's rule is gone by now (it depends on this resource); a second pass takes a message
    # SES was still writing when the rule went.
    deleted = 0

    def out_of_time() -> bool:  # leave time to answer: a function killed mid-drain leaves the stack waiting an hour
        return seconds_left() < _DRAIN_ANSWER_SECONDS

    for _ in range(_DRAIN_PASSES):
        try:
            emptied = setup.buckets.empty(bucket, out_of_time)
        except BucketNotEmptied as exc:
            raise StackSetupError(
                f"s3://{bucket}: {deleted + exc.deleted} messages deleted, more left when the function's time ran "
                "out; delete the stack again to go on (nothing is lost: SES no longer writes there)"
            ) from None
        deleted += emptied
        if not emptied:
            break
    setup.log.info("message bucket emptied for the stack's delete", extra={"bucket": bucket, "deleted": deleted})
    return Outcome(old_id)


def seed_tenants(setup: StackSetup, request: str, props: Mapping[str, Any]) -> Outcome:
    """``Custom::TenantSeed``: a monitor-mode tenant item for each domain the rule covers that has none."""
    if request == "Delete":
        return Outcome("tenant-seed")  # tenant items outlive the stack (the table is retained)
    seed = str(props.get("Seed", "monitor"))
    if seed not in ("monitor", "off"):
        raise StackSetupError(f"TenantSeed: Seed {seed[:40]!r} is not monitor|off")
    if seed == "off":
        setup.log.info("tenant seeding off (SeedTenants=off)")
        return Outcome("tenant-seed", {"Created": "0", "Existing": "0"})
    table = str(props.get("TableName", ""))
    if not table:
        raise StackSetupError("TenantSeed: TableName missing")
    recipients = props.get("Recipients", [])
    if isinstance(recipients, str):
        recipients = recipients.split(",")
    coverage = rule_coverage(str(r) for r in recipients)
    if coverage.subdomain_entries:
        entry = coverage.subdomain_entries[0]
        raise StackSetupError(
            f"Recipients entry {entry!r} covers every subdomain of {entry[1:]}, which cannot be listed as "
            "tenants (a subdomain without a tenant item gets 550 5.2.1): list the subdomains instead, or "
            "create their tenant items first and deploy with SeedTenants=off"
        )
    domains = list(coverage.domains)
    if coverage.all_domains:
        domains = []
        for identity in setup.rules.domain_identities():
            try:
                domains.append(tenant_domain(identity))
            except ValueError:
                setup.log.warning("domain identity skipped", extra={"identity": identity[:80]})
    stack = str(props.get("StackName") or "unknown")
    seeder = setup.tenants(table)
    created = [
        d for d in dict.fromkeys(domains) if seeder.seed(d, mode=Mode.MONITOR, by=f"stack {stack}", now=setup.now())
    ]
    existing = len(set(domains)) - len(created)
    setup.log.info("tenants seeded in monitor mode", extra={"seeded": created, "already_tenants": existing})
    return Outcome("tenant-seed", {"Created": str(len(created)), "Existing": str(existing)})


def _adapter_errors() -> tuple[type[Exception], ...]:
    from ipv6gate.aws.receipt_rules import ReceiptRulesError
    from ipv6gate.ports import MessageStoreError, TenantLookupError

    return (ReceiptRulesError, TenantLookupError, MessageStoreError)


def send_response(url: str, document: Mapping[str, Any], *, timeout: float = 10.0, tries: int = 3) -> None:
    """PUT the response document to CloudFormation's pre-signed URL (no content type: it is signed without one)."""
    if not url.startswith(("https://", "http://")):
        raise StackSetupError(f"ResponseURL {url[:40]!r} is not an http(s) URL")
    body = json.dumps(document).encode()
    last: Exception | None = None
    for _ in range(tries):
        request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 - scheme checked above
                reply.read()
                return
        except OSError as exc:
            last = exc
    raise StackSetupError(f"could not send the response to CloudFormation: {last}")
