import dataclasses
import re

import pytest

from ipv6gate.checks.iprev import PtrMode
from ipv6gate.decision.rule import TempErrorAction
from ipv6gate.dns.model import DnsServer
from ipv6gate.settings import BouncerSettings, MilterSettings, Settings, SettingsError, parse_dns_servers


def test_defaults_follow_the_region() -> None:
    s = Settings.from_env({"AWS_REGION": "us-west-2"})
    assert s.trusted_receivers == ("inbound-smtp.us-west-2.amazonaws.com",)
    assert s.ptr_mode is PtrMode.EXISTS and s.temperror_action is TempErrorAction.ACCEPT
    assert s.decision_budget_seconds < 30  # SES's RequestResponse limit


def test_every_setting_is_read() -> None:
    s = Settings.from_env(
        {
            "TENANTS_TABLE": "t",
            "MESSAGE_BUCKET": "b",
            "MESSAGE_PREFIX": "in/",
            "DNS_SERVERS": "192.0.2.1:5353",
            "DNS_QUERY_TIMEOUT_SECONDS": "1.5",
            "DECISION_BUDGET_SECONDS": "8",
            "DNS_QUERY_LIMIT": "40",
            "DNS_CACHE_SIZE": "0",
            "PTR_MODE": "FCrDNS",
            "TRUSTED_RECEIVERS": "mx.example.test, *.mx.test",
            "TEMPERROR_ACTION": "reject",
            "SPF_VOID_LOOKUP_LIMIT": "5",
            "DKIM_MAX_SIGNATURES": "3",
            "MESSAGE_MAX_BYTES": "2048",
        }
    )
    assert (s.tenants_table, s.message_bucket, s.message_prefix) == ("t", "b", "in/")
    assert s.dns_servers == (DnsServer("192.0.2.1", 5353),)
    assert (s.dns_query_timeout_seconds, s.decision_budget_seconds, s.dns_query_limit) == (1.5, 8.0, 40)
    assert s.dns_cache_size == 0 and s.ptr_mode is PtrMode.FCRDNS
    assert s.trusted_receivers == ("mx.example.test", "*.mx.test")
    assert s.temperror_action is TempErrorAction.REJECT
    assert (s.spf_void_lookup_limit, s.dkim_max_signatures, s.message_max_bytes) == (5, 3, 2048)


def test_dns_server_forms() -> None:
    assert parse_dns_servers("192.0.2.1, 192.0.2.2:5300,[2001:db8::53]:53,2001:db8::54") == (
        DnsServer("192.0.2.1"),
        DnsServer("192.0.2.2", 5300),
        DnsServer("2001:db8::53"),
        DnsServer("2001:db8::54"),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DNS_SERVERS": "dns.google"}, "DNS_SERVERS: 'dns.google' is not an IP address"),
        ({"DNS_SERVERS": "192.0.2.1:99999"}, "DNS_SERVERS: port 99999"),
        ({"PTR_MODE": "strict"}, "PTR_MODE: 'strict' is not one of exists|fcrdns"),
        ({"TEMPERROR_ACTION": "maybe"}, "TEMPERROR_ACTION: 'maybe' is not one of accept|reject"),
        ({"DNS_QUERY_TIMEOUT_SECONDS": "soon"}, "DNS_QUERY_TIMEOUT_SECONDS: 'soon' is not a number"),
        ({"DECISION_BUDGET_SECONDS": "60"}, "DECISION_BUDGET_SECONDS: 60.0 is outside"),
        ({"DNS_QUERY_LIMIT": "-3"}, "DNS_QUERY_LIMIT: -3 is outside 5..500"),
        ({"DNS_QUERY_TIMEOUT_SECONDS": "5", "DECISION_BUDGET_SECONDS": "2"}, "must not exceed"),
        ({"TRUSTED_RECEIVERS": "mx/evil"}, "TRUSTED_RECEIVERS: 'mx/evil'"),
    ],
)
def test_bad_values_are_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


class RecordingEnv(dict[str, str]):
    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_env_names_lists_exactly_what_is_read() -> None:
    from ipv6gate.settings import ENV_NAMES

    env = RecordingEnv()
    Settings.from_env(env)
    assert env.asked - {"AWS_REGION", "AWS_DEFAULT_REGION"} == set(ENV_NAMES)


def test_template_passes_every_setting_except_the_offline_zone_dir() -> None:
    from pathlib import Path

    from ipv6gate.settings import ENV_NAMES

    template = Path(__file__).parents[2].joinpath("template.yaml").read_text()
    missing = [name for name in ENV_NAMES if f"{name}:" not in template and name != "DNS_ZONE_DIR"]
    assert missing == []


def test_readme_documents_every_setting() -> None:

    from ipv6gate.settings import ENV_NAMES

    readme = _documentation()
    assert [name for name in ENV_NAMES if f"| `{name}` |" not in readme] == []


def _documentation() -> str:
    """README.md and docs/*.md: where the settings tables live."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    return "\n".join(p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))])


def _readme_default(spec: dataclasses.Field[object]) -> str:
    if spec.metadata["shown"]:
        return str(spec.metadata["shown"])
    value = spec.default
    if value == "":
        return "empty"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


@pytest.mark.parametrize("model", [Settings, BouncerSettings, MilterSettings])
def test_readme_table_shows_each_declared_default(model: type) -> None:
    """Each setting is declared once (settings.setting); the README's tables must say the same default."""

    readme = _documentation()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Z0-9_]+)` \| ([^|]+?) \|", readme, re.M)}
    declared = [spec for spec in dataclasses.fields(model) if "env" in spec.metadata]
    assert declared
    assert {spec.metadata["env"]: rows.get(spec.metadata["env"]) for spec in declared} == {
        spec.metadata["env"]: _readme_default(spec) for spec in declared
    }
