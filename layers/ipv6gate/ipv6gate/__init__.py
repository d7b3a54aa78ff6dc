"""ipv6gate: the Exchange Online rule for anonymous inbound mail over IPv6, for Amazon SES."""

__version__ = "0.1.0"
