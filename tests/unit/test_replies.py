import ipaddress

from ipv6gate.decision import replies


def test_reply_texts_are_verbatim_with_compressed_address() -> None:
    ip = ipaddress.IPv6Address("2a01:0111:f200:2004:0000:0000:0000:0240")
    assert str(replies.no_reverse_dns(ip)) == (
        "450 4.7.25 Service unavailable, sending IPv6 address [2a01:111:f200:2004::240] must have reverse DNS record."
    )
    assert str(replies.not_authenticated(ip)) == (
        "450 4.7.26 Service unavailable, message sent over IPv6 [2a01:111:f200:2004::240] "
        "must pass either SPF or DKIM validation."
    )
    assert str(replies.ipv6_not_accepted("contoso.com")) == (
        "550 5.2.1 Service unavailable, [contoso.com] does not accept email over IPv6."
    )
    assert not replies.no_reverse_dns(ip).permanent and replies.ipv6_not_accepted("a.test").permanent
