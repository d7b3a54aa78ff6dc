"""Values and errors shared by the DNS backends and the session."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import dns.name
import dns.rdata
import dns.rdatatype


class DnsTempError(Exception):
    """Timeout, SERVFAIL, no reachable server or an exhausted budget: the answer may differ later."""


class DnsNameError(ValueError):
    """The name cannot be asked at all (too long, empty label, not a domain name)."""


class Status(StrEnum):
    OK = "ok"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"


@dataclass(frozen=True, slots=True)
class Answer:
    """The records of one type at one name, CNAMEs already followed."""

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    status: Status
    records: tuple[dns.rdata.Rdata, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.records


class Backend(Protocol):
    """Answers one question within ``timeout`` seconds or raises ``DnsTempError``."""

    def lookup(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, timeout: float) -> Answer: ...


@dataclass(frozen=True, slots=True)
class DnsServer:
    """A resolver to ask (settings: DNS_SERVERS)."""

    host: str
    port: int = 53
