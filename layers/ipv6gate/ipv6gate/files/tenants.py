"""The tenant directory read from a JSON file: ``ipv6gate evaluate --tenants`` and ``ipv6gate milter --tenants``.

The file is a JSON list of items shaped like the DynamoDB table's (``domain``, ``ipv6_inbound``,
``mode``, ``partner_prefixes``), validated exactly as a table item is (``decision.tenants``). It is
read once, at start; the directory then answers from memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from ipv6gate.decision.tenants import Tenant, tenant_from_plain


class FileTenants:
    def __init__(self, tenants: Mapping[str, Tenant]) -> None:
        self._tenants = dict(tenants)

    @classmethod
    def from_json_file(cls, path: str | Path) -> FileTenants:
        """``OSError`` when the file cannot be read, ``ValueError`` (naming the entry) when it is not a tenants list."""
        text = Path(path).read_text(encoding="utf-8")
        if not text.strip():
            raise ValueError("the file is empty (give a JSON list of tenants, [] for none)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:  # its message alone ("Expecting value") does not say it is JSON
            raise ValueError(f"not valid JSON: {exc.msg.lower()} at line {exc.lineno} column {exc.colno}") from None
        if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
            raise ValueError("tenants file must be a JSON list of objects")
        tenants: dict[str, Tenant] = {}
        for i, item in enumerate(data):
            tenant = tenant_from_plain(item)  # the same validation as a table item's
            if tenant.domain in tenants:
                raise ValueError(f"entry {i}: tenant {tenant.domain} is listed twice")
            tenants[tenant.domain] = tenant
        return cls(tenants)

    @property
    def domains(self) -> list[str]:
        return sorted(self._tenants)

    def get_many(self, domains: Iterable[str]) -> dict[str, Tenant]:
        return {d: self._tenants[d] for d in domains if d in self._tenants}
