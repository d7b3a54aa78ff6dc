import pytest

from ipv6gate.mail.domains import DomainError, normalize_domain, recipient_domain


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("bob@Tenant.TEST", "tenant.test"),
        ("<bob@tenant.test.>", "tenant.test"),
        ('"odd@local"@tenant.test', "tenant.test"),
        ("anna@Bücher.test", "xn--bcher-kva.test"),
        ("anna@XN--BCHER-KVA.test", "xn--bcher-kva.test"),
    ],
)
def test_recipient_domains_are_canonical(address: str, domain: str) -> None:
    assert recipient_domain(address) == domain


@pytest.mark.parametrize(
    "bad", ["no-at-sign", "@tenant.test", "a@", "a@single", "a@" + "x" * 64 + ".test", "a@bad_label.test"]
)
def test_bad_recipients_are_refused(bad: str) -> None:
    with pytest.raises(DomainError):
        recipient_domain(bad)


def test_normalize_domain_is_idempotent() -> None:
    assert normalize_domain(normalize_domain("Bücher.Test")) == "xn--bcher-kva.test"
