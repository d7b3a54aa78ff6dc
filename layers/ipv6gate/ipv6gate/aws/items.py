"""DynamoDB items in the wire format and back, by boto3's own serializer and deserializer.

``plain`` gives JSON-like values: a string set becomes a sorted list (what the tenants file holds), a
number an ``int`` when it is integral and a ``float`` otherwise (the deserializer's ``Decimal``
neither prints as JSON nor compares with the ints the code means), binary ``bytes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any


@cache
def _codecs() -> tuple[Any, Any, type]:
    # Imported on first use: boto3 pulls in botocore's clients, which the gate's import must not
    # (tests/unit/test_handler_imports.py). Any: the stubs' TypedDicts would be spelled out per call.
    from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

    return TypeDeserializer(), TypeSerializer(), Binary


def plain(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An item as read from the low-level client, as plain Python values."""
    deserializer = _codecs()[0]
    return {key: _plain_value(deserializer.deserialize(dict(typed))) for key, typed in item.items()}


def wire(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Plain values (``str``, ``int``, ``bool``, ``set`` of ``str`` for a string set) as a wire-format item."""
    serializer = _codecs()[1]
    return {key: serializer.serialize(value) for key, value in values.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, _codecs()[2]):
        raw: Any = value  # its stub misreads __bytes__; the bytes are in .value
        return bytes(raw.value)
    if isinstance(value, set | frozenset):
        return sorted(_plain_value(v) for v in value)
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items()}
    return value
