"""Builds a ``Gate`` from ``Settings``: the one place that picks adapters and makes AWS clients.

Entry points (the Lambda handler, the CLI) call this once per process (per cold start).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ipv6gate.bounce.backscatter import BounceDecision
from ipv6gate.bounce.request import BounceRequest
from ipv6gate.dns import Backend, DnsResolver, DnsTempError
from ipv6gate.evaluation.evaluator import Evaluator
from ipv6gate.evaluation.gate import Gate
from ipv6gate.evaluation.recorder import Recorder
from ipv6gate.evaluation.runner import CheckRunner
from ipv6gate.evaluation.staged import Limits, SmtpGate
from ipv6gate.ports import BounceQueue, MessageStore, TenantDirectory, TraceStore
from ipv6gate.settings import MilterSettings, Settings, SettingsError


def build_dns(settings: Settings) -> DnsResolver:
    backend: Backend
    if settings.dns_zone_dir:
        from ipv6gate.dns.zones import ZoneBackend

        try:
            backend = ZoneBackend.from_directory(settings.dns_zone_dir)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    else:
        from ipv6gate.dns.network import NetworkBackend

        try:
            backend = NetworkBackend(settings.dns_servers, cache_size=settings.dns_cache_size)
        except DnsTempError as exc:
            raise SettingsError(f"DNS_SERVERS: {exc}") from None
    return DnsResolver(backend, query_timeout=settings.dns_query_timeout_seconds, query_limit=settings.dns_query_limit)


def aws_client(service: str, region: str | None = None) -> Any:
    """A boto3 client; boto3 itself honours AWS_ENDPOINT_URL (moto server, LocalStack).

    ``region`` None: boto3's own choice (AWS_DEFAULT_REGION, the profile; Lambda sets both).
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    # Short timeouts and few retries: the gate runs inside SES's 30 s limit.
    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
    make: Any = boto3.client  # the stubs' overloads want a literal service name
    try:
        return make(service, config=config, region_name=region)
    except (ValueError, BotoCoreError) as exc:  # AWS_ENDPOINT_URL or the region name is unusable
        raise SettingsError(f"AWS {service} client: {' '.join(str(exc).split())}") from None


def aws_region(env: Mapping[str, str]) -> str | None:
    """The region AWS calls go to: AWS_REGION, AWS_DEFAULT_REGION, else the AWS profile's; ``None`` if none.

    boto3 reads only the last two, and without any it fails at the first client with a traceback's
    ``NoRegionError``: the CLI asks this first and says what to set.
    """
    region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip()
    if region:
        return region
    import boto3

    return boto3.session.Session().region_name or None


class Clients:
    """boto3 clients made on first use, one per service, shared by the adapters of one gate.

    Creating a client costs a cold start ~0.1 s; an IPv4 decision needs none and an IPv6 one
    usually only DynamoDB's (tenants and trace share it). Thread-safe: the checks run in threads.
    """

    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, service: str) -> Any:
        with self._lock:
            if service not in self._made:
                self._made[service] = aws_client(service, self._region)
            return self._made[service]

    def lazy(self, service: str) -> Any:
        return _LazyClient(self, service)


class _LazyClient:
    def __init__(self, clients: Clients, service: str) -> None:
        self._clients = clients
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clients.get(self._service), name)


def build_tenants(settings: Settings, clients: Clients | None = None) -> TenantDirectory:
    if not settings.tenants_table:
        raise SettingsError("TENANTS_TABLE: not set (the DynamoDB table of tenant domains)")
    from ipv6gate.aws.dynamodb import DynamoTenantDirectory

    directory: TenantDirectory = DynamoTenantDirectory((clients or Clients()).lazy("dynamodb"), settings.tenants_table)
    if settings.tenant_cache_seconds:
        from ipv6gate.aws.cached import CachedTenantDirectory

        directory = CachedTenantDirectory(directory, settings.tenant_cache_seconds)
    return directory


def build_messages(settings: Settings, clients: Clients | None = None) -> MessageStore | None:
    if not settings.message_bucket:
        return None
    from ipv6gate.aws.s3 import S3MessageStore

    return S3MessageStore((clients or Clients()).lazy("s3"), settings.message_bucket, settings.message_prefix)


def build_bounce_queue(settings: Settings, clients: Clients | None = None) -> BounceQueue | None:
    if not settings.bounce_queue_url:
        return None
    from ipv6gate.aws.sqs import SqsBounceQueue

    return SqsBounceQueue((clients or Clients()).lazy("sqs"), settings.bounce_queue_url)


def build_trace(settings: Settings, clients: Clients | None = None) -> TraceStore | None:
    if not settings.trace_table:
        return None
    from ipv6gate.aws.trace import DynamoTraceStore

    return DynamoTraceStore((clients or Clients()).lazy("dynamodb"), settings.trace_table, settings.trace_ttl_days)


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
    the policy's), and nothing is recorded unless ``record`` (``ipv6gate evaluate --record``: the trace)."""
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
        dry_run=not act,
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
) -> Gate:
    """A gate from adapters already made (``build_gate``'s, or a test's local ones)."""
    evaluator = Evaluator(settings, CheckRunner(dns, clock), tenants, bounces=bounces, dry_run=dry_run, clock=clock)
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
    runner = CheckRunner(dns, max_workers=check_threads, readers=dkim_readers)
    evaluator = Evaluator(settings, runner, tenants)
    return SmtpGate(evaluator, Recorder(trace, now), limits=limits)


def build_sender_proof(settings: Settings, clients: Clients | None = None) -> Callable[[BounceRequest], BounceDecision]:
    """The bouncer's proof of a sender the gate had not finished checking: the same evaluator, DNS and store."""
    from ipv6gate.evaluation.sender_proof import authenticate_sender

    evaluator = Evaluator(settings, CheckRunner(build_dns(settings), max_workers=2), None)
    messages = build_messages(settings, clients)
    return lambda request: authenticate_sender(request, evaluator=evaluator, messages=messages)


def probe_smtp_stack(settings: MilterSettings, *, tenants_from_file: bool, region: str | None) -> list[str]:
    """What would otherwise fail only at the first message, checked once at the milter's start.

    The region resolves (the DynamoDB endpoint's host name: a misspelt region has none), the tenants
    table answers a read (BatchGetItem of a key no tenant has), the trace table takes a write that
    changes nothing (BatchWriteItem deleting a key that cannot exist), each DNS server answers one
    query. Empty when all is well, else one line per problem.
    """
    from ipv6gate.aws.dynamodb import DynamoTenantDirectory
    from ipv6gate.aws.trace import DynamoTraceStore
    from ipv6gate.dns.network import NetworkBackend
    from ipv6gate.ports import TenantLookupError, TraceError

    s = settings.checks
    problems: list[str] = []
    if not tenants_from_file or s.trace_table:
        client = Clients(region).get("dynamodb")
        unresolved = _unresolved_endpoint(client.meta.endpoint_url)
        if unresolved:  # the table checks would only say the same, after their retries
            problems.append(f"AWS_REGION {region}: {unresolved}")
        else:
            if not tenants_from_file:
                try:
                    DynamoTenantDirectory(client, s.tenants_table).probe()
                except TenantLookupError as exc:
                    problems.append(f"TENANTS_TABLE: {exc}")
            if s.trace_table:
                try:
                    DynamoTraceStore(client, s.trace_table, s.trace_ttl_days).probe()
                except TraceError as exc:
                    problems.append(f"TRACE_TABLE: {exc}")
    if not s.dns_zone_dir:
        try:
            NetworkBackend(s.dns_servers, cache_size=0).probe(s.dns_query_timeout_seconds)
        except DnsTempError as exc:
            problems.append(f"DNS_SERVERS: {exc}")
    return problems


def _unresolved_endpoint(url: str) -> str | None:
    import socket
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or url
    try:
        socket.getaddrinfo(host, None)
    except OSError as exc:
        return f"the DynamoDB endpoint {host} does not resolve ({getattr(exc, 'strerror', None) or exc})"
    return None
