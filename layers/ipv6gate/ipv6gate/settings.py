"""Every setting of the gate in one validated, immutable model, read once per cold start.

Only this module and the entry points look at the environment; the core receives a ``Settings``.
Each name below is documented in the README and is a Parameter in ``template.yaml``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

# Every environment variable the core reads (the README and template.yaml document each one).
ENV_NAMES = (
    "TENANTS_TABLE",
    "MESSAGE_BUCKET",
    "MESSAGE_PREFIX",
    "DNS_SERVERS",
    "DNS_ZONE_DIR",
    "DNS_QUERY_TIMEOUT_SECONDS",
    "DECISION_BUDGET_SECONDS",
    "DNS_QUERY_LIMIT",
    "DNS_CACHE_SIZE",
    "PTR_MODE",
    "TRUSTED_RECEIVERS",
    "TEMPERROR_ACTION",
    "SPF_VOID_LOOKUP_LIMIT",
    "DKIM_MAX_SIGNATURES",
    "MESSAGE_MAX_BYTES",
    "BOUNCE_MODE",
    "BOUNCE_QUEUE_URL",
    "TRACE_TABLE",
    "TRACE_TTL_DAYS",
    "TENANT_CACHE_SECONDS",
)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


class PtrMode(StrEnum):
    EXISTS = "exists"  # a valid, non-numeric host name is published for the address
    FCRDNS = "fcrdns"  # ... and that name resolves back to the same address


class TempErrorAction(StrEnum):
    ACCEPT = "accept"  # a temporary DNS failure that decides the outcome lets the mail through
    REJECT = "reject"  # ... or answers the 450 that the failing check would carry


class BounceMode(StrEnum):
    AUTHENTICATED = "authenticated"  # bounce only to an authenticated envelope sender (no backscatter)
    ALWAYS = "always"  # to any sender, except where a bounce is never right (null sender, DSNs, ...)
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class DnsServer:
    host: str
    port: int = 53


@dataclass(frozen=True, slots=True)
class Settings:
    tenants_table: str = ""
    message_bucket: str = ""
    message_prefix: str = ""
    dns_servers: tuple[DnsServer, ...] = ()
    dns_zone_dir: str = ""
    dns_query_timeout_seconds: float = 2.0
    decision_budget_seconds: float = 10.0
    dns_query_limit: int = 120
    dns_cache_size: int = 4096
    ptr_mode: PtrMode = PtrMode.EXISTS
    trusted_receivers: tuple[str, ...] = ("inbound-smtp.*.amazonaws.com",)
    temperror_action: TempErrorAction = TempErrorAction.ACCEPT
    spf_void_lookup_limit: int = 2
    dkim_max_signatures: int = 5
    message_max_bytes: int = 40 * 1024 * 1024
    bounce_mode: BounceMode = BounceMode.AUTHENTICATED
    bounce_queue_url: str = ""
    trace_table: str = ""
    trace_ttl_days: int = 30
    tenant_cache_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from environment variables; raise ``SettingsError`` on the first bad one."""
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        default_receiver = f"inbound-smtp.{region}.amazonaws.com" if region else "inbound-smtp.*.amazonaws.com"
        settings = cls(
            tenants_table=env.get("TENANTS_TABLE", "").strip(),
            message_bucket=env.get("MESSAGE_BUCKET", "").strip(),
            message_prefix=env.get("MESSAGE_PREFIX", ""),
            dns_servers=parse_dns_servers(env.get("DNS_SERVERS", "")),
            dns_zone_dir=env.get("DNS_ZONE_DIR", "").strip(),
            dns_query_timeout_seconds=env_number(env, "DNS_QUERY_TIMEOUT_SECONDS", 2.0, 0.05, 10.0),
            decision_budget_seconds=env_number(env, "DECISION_BUDGET_SECONDS", 10.0, 0.1, 25.0),
            dns_query_limit=env_integer(env, "DNS_QUERY_LIMIT", 120, 5, 500),
            dns_cache_size=env_integer(env, "DNS_CACHE_SIZE", 4096, 0, 1_000_000),
            ptr_mode=_choice(env, "PTR_MODE", PtrMode, PtrMode.EXISTS),
            trusted_receivers=_receivers(env.get("TRUSTED_RECEIVERS", ""), default_receiver),
            temperror_action=_choice(env, "TEMPERROR_ACTION", TempErrorAction, TempErrorAction.ACCEPT),
            spf_void_lookup_limit=env_integer(env, "SPF_VOID_LOOKUP_LIMIT", 2, 0, 100),
            dkim_max_signatures=env_integer(env, "DKIM_MAX_SIGNATURES", 5, 1, 50),
            message_max_bytes=env_integer(env, "MESSAGE_MAX_BYTES", 40 * 1024 * 1024, 1024, 64 * 1024 * 1024),
            bounce_mode=_choice(env, "BOUNCE_MODE", BounceMode, BounceMode.AUTHENTICATED),
            bounce_queue_url=env.get("BOUNCE_QUEUE_URL", "").strip(),
            trace_table=env.get("TRACE_TABLE", "").strip(),
            trace_ttl_days=env_integer(env, "TRACE_TTL_DAYS", 30, 1, 3650),
            tenant_cache_seconds=env_integer(env, "TENANT_CACHE_SECONDS", 30, 0, 3600),
        )
        if settings.dns_query_timeout_seconds > settings.decision_budget_seconds:
            raise SettingsError(
                "DNS_QUERY_TIMEOUT_SECONDS must not exceed DECISION_BUDGET_SECONDS "
                f"({settings.dns_query_timeout_seconds} > {settings.decision_budget_seconds})"
            )
        return settings


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")


def parse_dns_servers(value: str) -> tuple[DnsServer, ...]:
    """Parse ``ip``, ``ip:port``, bare IPv6 or ``[v6]:port`` items separated by commas."""
    import ipaddress

    servers: list[DnsServer] = []
    for raw in (item.strip() for item in value.split(",")):
        if not raw:
            continue
        host: str
        port = 53
        if raw.count(":") > 1 and not raw.startswith("["):
            host = raw  # a bare IPv6 address
        else:
            m = _HOST_PORT.match(raw)
            if not m:
                raise SettingsError(f"DNS_SERVERS: {raw!r} is not ip, ip:port or [ipv6]:port")
            host = m.group("v6") or m.group("host")
            port = int(m.group("port") or 53)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise SettingsError(f"DNS_SERVERS: {host!r} is not an IP address") from None
        if not 0 < port < 65536:
            raise SettingsError(f"DNS_SERVERS: port {port} in {raw!r} is out of range")
        servers.append(DnsServer(host, port))
    return tuple(servers)


def _receivers(value: str, default: str) -> tuple[str, ...]:
    items = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    for item in items:
        if not re.fullmatch(r"[a-z0-9*.-]+", item):
            raise SettingsError(f"TRUSTED_RECEIVERS: {item!r} is not a host name pattern")
    return items or (default,)


def env_number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: {value} is outside {low}..{high}")
    return value


def env_integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"\d+", raw):
        raise SettingsError(f"{name}: {raw!r} is not a whole number")
    value = int(raw)
    if not low <= value <= high:
        raise SettingsError(f"{name}: {value} is outside {low}..{high}")
    return value


def _choice[E: StrEnum](env: Mapping[str, str], name: str, kind: type[E], default: E) -> E:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        allowed = "|".join(member.value for member in kind)
        raise SettingsError(f"{name}: {raw!r} is not one of {allowed}") from None
