"""Each process's objects, assembled from the adapters: the gate (Lambda and ``ipv6gate evaluate``),
the milter's gate, the bouncer and its sender proof, the stack's custom resources."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ipv6gate.bounce.backscatter import BounceDecision
from ipv6gate.bounce.request import BounceRequest
from ipv6gate.dns import DnsResolver
from ipv6gate.evaluation.evaluator import Evaluator
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.recorder import Recorder
from ipv6gate.evaluation.runner import CheckRunner
from ipv6gate.evaluation.staged import Limits, SmtpGate
from ipv6gate.ports import BounceQueue, MessageStore, TenantDirectory, TraceStore
from ipv6gate.settings import BouncerSettings, MilterSettings, Settings, SettingsError
from ipv6gate.wiring.adapters import (
    Clients,
    aws_client,
    build_bounce_queue,
    build_dns,
    build_messages,
    build_tenants,
    build_trace,
    ses_bounce_client,
)

if TYPE_CHECKING:  # named in annotations only: the gate's cold start does not import them
    from aws_lambda_powertools import Logger, Metrics

    from ipv6gate.aws.bounce_batches import BounceBatches
    from ipv6gate.aws.custom_resources import Log, StackSetup


def build_gate(
    settings: Settings,
    tenants: TenantDirectory | None = None,
    messages: MessageStore | None = None,
    *,
    act: bool = True,
    record: bool = False,
    region: str | None = None,
) -> Gate:
    """The Lambda's gate. ``act=False`` (the CLI) decides only: no bounce is queued (the decision shows
    the policy's), and nothing is recorded unless ``record`` (``ipv6gate evaluate --record``: the trace,
    where a due bounce then says ``none``: nothing was queued)."""
    clients = Clients(region)
    trace = build_trace(settings, clients) if act or record else None
    if record and trace is None:
        raise SettingsError("TRACE_TABLE: not set (--record writes each decision there)")
    return assemble_gate(
        settings,
        build_dns(settings),
        tenants if tenants is not None else build_tenants(settings, clients),
        messages if messages is not None else build_messages(settings, clients),
        bounces=build_bounce_queue(settings, clients) if act else None,
        trace=trace,
        # Recorded decisions say what was done: no queue here, so a due bounce is "none" (README "Try it locally").
        dry_run=not act and not record,
        prestart=True,
    )


def assemble_gate(
    settings: Settings,
    dns: DnsResolver,
    tenants: TenantDirectory,
    messages: MessageStore | None,
    *,
    bounces: BounceQueue | None = None,
    trace: TraceStore | None = None,
    dry_run: bool = False,
    complete_checks: bool = False,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    prestart: bool = False,
) -> Gate:
    """A gate from adapters already made (``build_gate``'s, or a test's local ones). ``prestart``: the checks'
    threads start now (the Lambda's cold start), not in its first decisions."""
    runner = CheckRunner(dns, clock, prestart=prestart)
    evaluator = Evaluator(settings, runner, tenants, bounces=bounces, dry_run=dry_run, clock=clock)
    return Gate(evaluator, messages, Recorder(trace, now), complete_checks=complete_checks)


def build_smtp_gate(
    settings: MilterSettings, tenants: TenantDirectory | None = None, *, region: str | None = None
) -> SmtpGate:
    """The milter's gate: the same DNS layer, tenants and trace as the Lambda; no bounces (it replies in session)."""
    s = settings.checks
    clients = Clients(region)
    if tenants is None or s.trace_table:
        # A long-running process: an unusable region or endpoint fails the start, not the first message.
        clients.get("dynamodb")
    return assemble_smtp_gate(
        s,
        build_dns(s),
        tenants if tenants is not None else build_tenants(s, clients),
        trace=build_trace(s, clients),
        limits=Limits(max_recipients=settings.max_recipients, max_header_bytes=settings.max_header_bytes),
        check_threads=settings.check_threads,
        dkim_readers=settings.dkim_readers,
    )


def assemble_smtp_gate(
    settings: Settings,
    dns: DnsResolver,
    tenants: TenantDirectory,
    *,
    trace: TraceStore | None = None,
    limits: Limits | None = None,
    check_threads: int = 6,
    dkim_readers: int = 8,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SmtpGate:
    """The milter's gate from adapters already made (``build_smtp_gate``'s, or a test's local ones)."""
    evaluator = Evaluator(settings, CheckRunner(dns, max_workers=check_threads, readers=dkim_readers), tenants)
    return SmtpGate(evaluator, Recorder(trace, now), limits=limits)


def build_sender_proof(settings: Settings, clients: Clients | None = None) -> Callable[[BounceRequest], BounceDecision]:
    """The bouncer's proof of a sender the gate had not finished checking: the same evaluator, DNS and store."""
    from ipv6gate.evaluation.sender_proof import authenticate_sender

    evaluator = Evaluator(settings, CheckRunner(build_dns(settings), max_workers=2), None)
    messages = build_messages(settings, clients)
    return lambda request: authenticate_sender(request, evaluator=evaluator, messages=messages)


def build_bouncer(settings: BouncerSettings, logger: Logger, metrics: Metrics) -> BounceBatches:
    """The bouncer: SES client, pacing, the sender proof (same evaluator, DNS, store) and the idempotency table."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from ipv6gate.aws.bounce_batches import BounceBatches
    from ipv6gate.aws.ses_bounces import BounceSender, Pacer

    sender = BounceSender(
        ses_bounce_client(),
        settings,
        Pacer(settings.rate_per_second),
        logger=logger,
        metrics=metrics,
        # For requests the gate queued before SPF/DKIM finished.
        authenticate=build_sender_proof(settings.checks),
    )
    return BounceBatches(
        sender,
        DynamoDBPersistenceLayer(table_name=settings.idempotency_table),
        expiry_seconds=settings.idempotency_expiry_seconds,
        logger=logger,
        metrics=metrics,
    )


def build_stack_setup(log: Log) -> StackSetup:
    """The stack's custom resources (rule sets, tenant seed, bucket drain), with their SES, DynamoDB, S3 clients."""
    from ipv6gate.aws.custom_resources import StackSetup
    from ipv6gate.aws.dynamodb import TenantAdmin
    from ipv6gate.aws.receipt_rules import SesReceiptRules
    from ipv6gate.aws.s3 import S3BucketEmptier

    ses, dynamodb = aws_client("ses"), aws_client("dynamodb")
    return StackSetup(
        buckets=S3BucketEmptier(aws_client("s3")),
        rules=SesReceiptRules(ses),
        tenants=lambda table: TenantAdmin(dynamodb, table),
        now=lambda: datetime.now(UTC).isoformat(timespec="seconds"),
        log=log,
    )
