"""The adapters, each built from settings: the DNS layer, AWS clients (lazily, one per service) and what
uses them, the tenants file. Only ``wiring`` and the front doors call these."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ipv6gate.dns import Backend, DnsResolver, DnsTempError
from ipv6gate.ports import BounceQueue, MessageStore, TenantDirectory, TraceStore
from ipv6gate.settings import Settings, SettingsError

if TYPE_CHECKING:  # named in annotations only: a cold start imports an adapter when it builds one
    from ipv6gate.aws.dynamodb import TenantAdmin
    from ipv6gate.aws.trace import DynamoTraceStore


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


def aws_session() -> Any:
    """A botocore session, read from the environment now; it honours AWS_ENDPOINT_URL (moto, LocalStack).

    botocore rather than boto3: ``import boto3`` also imports s3transfer (and with it awscrt when
    installed), a third of a cold IPv6 decision's imports, for nothing the adapters use.
    """
    from botocore.session import get_session

    return get_session()


def aws_client(service: str, region: str | None = None, session: Any = None) -> Any:
    """A client of ``session`` (a new one by default).

    ``region`` None: the SDK's own choice (AWS_DEFAULT_REGION, the profile; Lambda sets both).
    """
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    # Short timeouts and few retries: the gate runs inside SES's 30 s limit.
    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
    try:
        return (session or aws_session()).create_client(service, config=config, region_name=region)
    except (ValueError, BotoCoreError) as exc:  # AWS_ENDPOINT_URL or the region name is unusable
        raise SettingsError(f"AWS {service} client: {' '.join(str(exc).split())}") from None


def aws_region(env: Mapping[str, str]) -> str | None:
    """The region AWS calls go to: AWS_REGION, AWS_DEFAULT_REGION, else the AWS profile's; ``None`` if none.

    The SDK reads only the last two, and without any it fails at the first client with a traceback's
    ``NoRegionError``: the CLI asks this first and says what to set.
    """
    region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip()
    if region:
        return region
    found: str | None = aws_session().get_config_variable("region")
    return found or None


class Clients:
    """AWS (botocore) clients made on first use, one per service, shared by the adapters of one gate.

    Creating a client costs a cold start ~0.1 s; an IPv4 decision needs none and an IPv6 one
    usually only DynamoDB's (tenants and trace share it). Thread-safe: the checks run in threads.
    """

    def __init__(self, region: str | None = None) -> None:
        self._region = region
        self._made: dict[str, Any] = {}
        self._session: Any = None  # one botocore session: the clients share its loaded models
        self._lock = threading.Lock()

    def get(self, service: str) -> Any:
        with self._lock:
            if service not in self._made:
                self._session = self._session or aws_session()
                self._made[service] = aws_client(service, self._region, self._session)
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


def file_tenants(path: str | Path) -> TenantDirectory:
    """The tenant directory of a JSON file (``--tenants``); ``OSError`` or ``ValueError`` when unusable."""
    from ipv6gate.files.tenants import FileTenants

    return FileTenants.from_json_file(path)


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


def build_trace_reader(settings: Settings, region: str | None, clients: Clients | None = None) -> DynamoTraceStore:
    """The trace table for ``ipv6gate trace`` and ``ipv6gate report`` (TRACE_TABLE must be set)."""
    from ipv6gate.aws.trace import DynamoTraceStore

    client = (clients or Clients(region)).get("dynamodb")
    return DynamoTraceStore(client, settings.trace_table, ttl_days=settings.trace_ttl_days)


def build_tenant_admin(
    settings: Settings, region: str | None, clients: Clients | None = None, *, table: str | None = None
) -> TenantAdmin:
    """The tenants table's items for ``ipv6gate tenants`` and ``ipv6gate report``: ``table``, else
    TENANTS_TABLE (one of them must be set)."""
    from ipv6gate.aws.dynamodb import TenantAdmin

    return TenantAdmin((clients or Clients(region)).get("dynamodb"), table or settings.tenants_table)


def stack_output_of(stack: str, key: str, region: str | None) -> str:
    """One output of a deployed stack (``tenants --stack``); ``StackOutputError`` when it has none."""
    from ipv6gate.aws.stack import stack_output

    return stack_output(aws_client("cloudformation", region), stack, key)


def caller_identity(region: str | None) -> str:
    """The AWS identity the CLI acts as (STS), recorded with a tenant change; raises when STS cannot say."""
    arn: str = aws_client("sts", region).get_caller_identity()["Arn"]
    return arn


def ses_bounce_client() -> Any:
    """The SES v1 client for SendBounce: SDK retries off, since ``BounceSender`` paces and backs off."""
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 1, "mode": "standard"})
    return aws_session().create_client("ses", config=config)
