"""Every setting of the gate in one validated, immutable model, read once per cold start.

Each setting is declared once, as a field with ``setting(env, default, parser, help)``: ``from_env``,
``ENV_NAMES`` and the tests that check the README's table and the template's Parameters all read
that declaration. The enums belong to the domain code that uses them (``PtrMode`` to iprev,
``TempErrorAction`` to the policy, ``BounceMode`` to the bounce policy), which never imports this
module. Only this module and the entry points look at the environment.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from enum import StrEnum
from typing import Any

from ipv6gate.bounce.backscatter import BounceMode
from ipv6gate.checks.iprev import PtrMode
from ipv6gate.decision.rule import TempErrorAction
from ipv6gate.dns.model import DnsServer


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it and says what is expected."""


def setting[T](
    env: str, default: T, parse: Callable[[str], T], help: str, *, shown: str | None = None, strip: bool = True
) -> Any:
    """Declare a setting once: its variable, default, parser (raw text -> value; ValueError says why) and help.

    ``shown`` is how the README's table writes the default when it is not the value itself;
    ``strip=False`` keeps white space that is part of the value (a key prefix).
    """
    return field(default=default, metadata={"env": env, "parse": parse, "help": help, "shown": shown, "strip": strip})


def number(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not a number") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise ValueError(f"{raw!r} is not a whole number ({low}..{high})")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def choice[E: StrEnum](kind: type[E]) -> Callable[[str], E]:
    def parse(raw: str) -> E:
        try:
            return kind(raw.lower())
        except ValueError:
            raise ValueError(f"{raw!r} is not one of {'|'.join(m.value for m in kind)}") from None

    return parse


def text(raw: str) -> str:
    return raw


def from_env[S](cls: type[S], env: Mapping[str, str], **derived: Any) -> S:
    """An instance of the settings dataclass ``cls`` from ``env``; ``SettingsError`` names the first bad one.

    An unset or empty variable means the declared default, or the value in ``derived`` (defaults that
    depend on something else, such as the region).
    """
    values: dict[str, Any] = {}
    for spec in fields(cls):  # type: ignore[arg-type]
        meta = spec.metadata
        if "env" not in meta:
            continue
        raw = env.get(meta["env"], "")
        raw = raw.strip() if meta["strip"] else raw
        if not raw:
            continue
        try:
            values[spec.name] = meta["parse"](raw)
        except ValueError as exc:
            raise SettingsError(f"{meta['env']}: {exc}") from None
    return cls(**(derived | values))


def env_names(cls: type[Any]) -> tuple[str, ...]:
    """Every environment variable a settings dataclass reads, in declaration order."""
    return tuple(spec.metadata["env"] for spec in fields(cls) if "env" in spec.metadata)


_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")


def parse_dns_servers(value: str) -> tuple[DnsServer, ...]:
    """Parse ``ip``, ``ip:port``, bare IPv6 or ``[v6]:port`` items separated by commas; ``ValueError`` says why not."""
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
                raise ValueError(f"{raw!r} is not ip, ip:port or [ipv6]:port")
            host = m.group("v6") or m.group("host")
            port = int(m.group("port") or 53)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
        if not 0 < port < 65536:
            raise ValueError(f"port {port} in {raw!r} is out of range")
        servers.append(DnsServer(host, port))
    return tuple(servers)


def _receivers(value: str) -> tuple[str, ...]:
    items = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    for item in items:
        if not re.fullmatch(r"[a-z0-9*.-]+", item):
            raise ValueError(f"{item!r} is not a host name pattern")
    return items


_SYSTEM_RESOLVER: tuple[DnsServer, ...] = ()
_ANY_SES_REGION: tuple[str, ...] = ("inbound-smtp.*.amazonaws.com",)


@dataclass(frozen=True, slots=True)
class Settings:
    """The gate's settings (the Lambda, the CLI and the bouncer's checks); README "Settings" documents each."""

    tenants_table: str = setting(
        "TENANTS_TABLE", "", text, "DynamoDB table of tenants (partition key `domain`)", shown="(required)"
    )
    message_bucket: str = setting(
        "MESSAGE_BUCKET", "", text, "bucket the S3 action writes raw messages to; empty = no DKIM fetch"
    )
    message_prefix: str = setting(
        "MESSAGE_PREFIX", "", text, "key prefix of raw messages", shown="empty (template: `inbound/`)", strip=False
    )
    dns_servers: tuple[DnsServer, ...] = setting(
        "DNS_SERVERS", _SYSTEM_RESOLVER, parse_dns_servers, "resolvers to ask", shown="system resolver"
    )
    dns_zone_dir: str = setting("DNS_ZONE_DIR", "", text, "answer DNS from zone files (demo, tests)", shown="unset")
    dns_query_timeout_seconds: float = setting(
        "DNS_QUERY_TIMEOUT_SECONDS", 2.0, number(0.05, 10.0), "one query's limit"
    )
    decision_budget_seconds: float = setting(
        "DECISION_BUDGET_SECONDS", 10.0, number(0.1, 25.0), "a decision's DNS, counted from the call"
    )
    dns_query_limit: int = setting("DNS_QUERY_LIMIT", 120, integer(5, 500), "DNS queries per check of a decision")
    dns_cache_size: int = setting("DNS_CACHE_SIZE", 4096, integer(0, 1_000_000), "answers kept per warm container")
    ptr_mode: PtrMode = setting("PTR_MODE", PtrMode.EXISTS, choice(PtrMode), "what iprev wants of the PTR")
    trusted_receivers: tuple[str, ...] = setting(
        "TRUSTED_RECEIVERS",
        _ANY_SES_REGION,
        _receivers,
        "hosts whose Received header is trusted",
        shown="`inbound-smtp.<AWS_REGION>.amazonaws.com`",
    )
    temperror_action: TempErrorAction = setting(
        "TEMPERROR_ACTION", TempErrorAction.ACCEPT, choice(TempErrorAction), "when a temporary error decides"
    )
    spf_void_lookup_limit: int = setting("SPF_VOID_LOOKUP_LIMIT", 2, integer(0, 100), "RFC 7208 §4.6.4 limit")
    dkim_max_signatures: int = setting("DKIM_MAX_SIGNATURES", 5, integer(1, 50), "signatures verified per message")
    message_max_bytes: int = setting(
        "MESSAGE_MAX_BYTES", 40 * 1024 * 1024, integer(1024, 64 * 1024 * 1024), "largest raw message read for DKIM"
    )
    bounce_mode: BounceMode = setting(
        "BOUNCE_MODE", BounceMode.AUTHENTICATED, choice(BounceMode), "who gets a DSN for a rejection"
    )
    bounce_queue_url: str = setting("BOUNCE_QUEUE_URL", "", text, "SQS queue of bounce requests; empty = no bounces")
    trace_table: str = setting("TRACE_TABLE", "", text, "DynamoDB table of decisions; empty = no trace")
    trace_ttl_days: int = setting("TRACE_TTL_DAYS", 30, integer(1, 3650), "days a decision is kept")
    tenant_cache_seconds: int = setting("TENANT_CACHE_SECONDS", 30, integer(0, 3600), "seconds a tenant is cached")

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, received_in: str | None = None) -> Settings:
        """Build settings from environment variables; raise ``SettingsError`` on the first bad one.

        Unless TRUSTED_RECEIVERS says otherwise, the trusted receiver is SES's in the region that
        received the mail: for the function that is its own region (AWS_REGION), which must stay so.
        A tool reading saved events names it (``received_in``; ``"*"`` = any SES region), since
        where it calls AWS from says nothing about where an event was received.
        """
        region = received_in or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""
        derived = {"trusted_receivers": (f"inbound-smtp.{region}.amazonaws.com",)} if region else {}
        settings = from_env(cls, env, **derived)
        if settings.dns_query_timeout_seconds > settings.decision_budget_seconds:
            raise SettingsError(
                "DNS_QUERY_TIMEOUT_SECONDS must not exceed DECISION_BUDGET_SECONDS "
                f"({settings.dns_query_timeout_seconds} > {settings.decision_budget_seconds})"
            )
        return settings


# Every environment variable the core reads (the README and template.yaml document each one).
ENV_NAMES = env_names(Settings)


# --------------------------------------------------------------------------- the bouncer
IDEMPOTENCY_MARGIN_SECONDS = 6 * 3600  # idempotency records outlive the send window by this much

_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
_IDENTITY_ARN = re.compile(r"^arn:aws[a-z-]*:ses:[a-z0-9-]+:\d{12}:identity/\S+$")


def _email(raw: str) -> str:
    if not _EMAIL.fullmatch(raw):
        raise ValueError(f"{raw!r} is not an email address like bounces@example.com")
    return raw


def _identity_arn(raw: str) -> str:
    if not _IDENTITY_ARN.fullmatch(raw):
        raise ValueError(f"{raw!r} is not an SES identity ARN (arn:aws:ses:...:identity/...)")
    return raw


@dataclass(frozen=True, slots=True)
class BouncerSettings:
    """The bouncer's one settings model, read once per cold start (``from_env``) and validated.

    ``checks`` holds the gate's settings, for the senders the bouncer must authenticate itself.
    """

    bounce_sender: str = setting(
        "BOUNCE_SENDER", "", _email, "From address of bounces (a verified SES identity)", shown="(required)"
    )
    bounce_sender_arn: str = setting("BOUNCE_SENDER_ARN", "", _identity_arn, "identity ARN for sending authorization")
    idempotency_table: str = setting(
        "IDEMPOTENCY_TABLE", "", text, "DynamoDB table of idempotency records", shown="(required)"
    )
    max_age_hours: int = setting("BOUNCE_MAX_AGE_HOURS", 24, integer(1, 24), "older requests are dropped")
    rate_per_second: float = setting("BOUNCE_RATE_PER_SECOND", 1.0, number(0.01, 10.0), "SendBounce calls per second")
    checks: Settings = field(default_factory=Settings)
    # Not environment settings: the retry shape, fixed by SES's 1/s quota and the 60 s Timeout.
    max_attempts: int = 5  # SendBounce calls per request and invocation (1 + 4 retries)
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 8.0
    call_reserve_seconds: float = 15.0  # time one call (connect 3 s + read 10 s) and the idempotency write need

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BouncerSettings:
        """Build settings from environment variables; raise ``SettingsError`` on the first bad one."""
        settings = from_env(cls, env, checks=Settings.from_env(env))
        if not settings.bounce_sender:
            raise SettingsError("BOUNCE_SENDER: not set (the From address of bounces, a verified SES identity)")
        if not settings.idempotency_table:
            raise SettingsError("IDEMPOTENCY_TABLE: not set (the DynamoDB table that keeps bounces from repeating)")
        return settings

    @property
    def max_age(self) -> timedelta:
        return timedelta(hours=self.max_age_hours)

    @property
    def idempotency_expiry_seconds(self) -> int:
        """How long a sent bounce's idempotency record lives: beyond the last moment it could repeat."""
        return self.max_age_hours * 3600 + IDEMPOTENCY_MARGIN_SECONDS


# Every environment variable the bouncer reads for itself (README "Bounces" and template.yaml document each).
BOUNCER_ENV_NAMES = env_names(BouncerSettings)


# --------------------------------------------------------------------------- the milter
_AUTHSERV_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _authserv_id(raw: str) -> str:
    if not _AUTHSERV_ID.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a host name such as mx.example.net")
    return raw.lower()


@dataclass(frozen=True, slots=True)
class MilterSettings:
    """``ipv6gate milter``'s own settings; ``checks`` holds the gate's, read from the same environment."""

    authserv_id: str = setting(
        "MILTER_AUTHSERV_ID",
        "",
        _authserv_id,
        "authserv-id of the Authentication-Results header it adds (and removes when forged)",
        shown="the host's FQDN",
    )
    max_recipients: int = setting(
        "MILTER_MAX_RECIPIENTS", 100, integer(1, 10_000), "recipients per message; more get 452 4.5.3"
    )
    max_header_bytes: int = setting(
        "MILTER_MAX_HEADER_BYTES", 1024 * 1024, integer(1024, 16 * 1024 * 1024), "header block kept for DKIM"
    )
    check_threads: int = setting(
        "MILTER_CHECK_THREADS", 64, integer(3, 1024), "threads running PTR and SPF checks for all sessions"
    )
    max_sessions: int = setting(
        "MILTER_MAX_SESSIONS",
        500,
        integer(1, 100_000),
        "SMTP sessions in flight; a new one past it gets 421 4.3.2 (also the step threads and the recorder queue)",
    )
    dkim_readers: int = setting(
        "MILTER_DKIM_READERS",
        64,
        integer(1, 4096),
        "DKIM checks reading a message body at once; a message past it gets 451 4.3.2",
    )
    drain_seconds: float = setting(
        "MILTER_DRAIN_SECONDS",
        30.0,
        number(0.0, 3600.0),
        "on SIGTERM: seconds open sessions get to finish before the process ends",
    )
    checks: Settings = field(default_factory=Settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str], hostname: str = "localhost") -> MilterSettings:
        """Build settings from environment variables; raise ``SettingsError`` on the first bad one."""
        for name, why in RETIRED_MILTER_ENV.items():
            if env.get(name, "").strip():  # an operator's tuning that nothing reads any more: say so
                raise SettingsError(f"{name}: no longer read; {why}")
        return from_env(cls, env, checks=Settings.from_env(env), authserv_id=hostname.lower())


# Variables earlier releases read: set, they fail the start with one line instead of being ignored.
RETIRED_MILTER_ENV = {
    "MILTER_STEP_THREADS": "step threads now follow MILTER_MAX_SESSIONS (one per admitted session); unset it",
}
