"""The milter's start-time checks: what would otherwise fail only at the first message, and fail open there."""

from __future__ import annotations

from ipv6gate.dns import DnsTempError
from ipv6gate.settings import MilterSettings
from ipv6gate.wiring.adapters import Clients


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
