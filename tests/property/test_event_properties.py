"""parse_event: any JSON-like value is a Mail or an EventError, never another exception."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from devstack import world
from ipv6gate.mail.event import EventError, Mail, parse_event
from tests.property import strategies as s

VALID = world.ses_event()


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key/index path inside ``obj``."""
    out: list[tuple[Any, ...]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*prefix, k))
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((*prefix, i))
            out += paths(v, (*prefix, i))
    return out


PATHS = paths(VALID)


def parse(event: Any) -> Mail | None:
    try:
        mail = parse_event(event)
    except EventError:
        return None
    assert isinstance(mail, Mail)
    assert isinstance(mail.message_id, str) and isinstance(mail.mail_from, str)
    assert all(isinstance(r, str) for r in mail.recipients)
    assert all(isinstance(n, str) and isinstance(v, str) for n, v in mail.headers)
    assert isinstance(mail.headers_truncated, bool) and isinstance(mail.timestamp, str)
    return mail


@given(event=s.json_values)
def test_any_json_value(event: Any) -> None:
    parse(event)


@given(value=s.json_values, other=s.json_values)
def test_any_json_at_each_level(value: Any, other: Any) -> None:
    parse({"Records": value})
    parse({"Records": [value]})
    parse({"Records": [{"ses": value}]})
    parse({"Records": [{"ses": {"mail": value, "receipt": other}}]})
    parse({"Records": [{"ses": {"mail": {**VALID["Records"][0]["ses"]["mail"], "headers": value}, "receipt": other}}]})


big = st.sampled_from([10_000, 50_000])
mutations = st.one_of(
    st.tuples(st.just("drop"), st.none()),
    st.tuples(st.just("replace"), s.json_values),
    st.tuples(st.just("huge-list"), big),
    st.tuples(st.just("huge-string"), big),
)


@given(data=st.data(), count=st.integers(1, 3))
def test_mutations_of_a_valid_event(data: st.DataObject, count: int) -> None:
    event = copy.deepcopy(VALID)
    for _ in range(count):
        path = data.draw(st.sampled_from(PATHS))
        kind, value = data.draw(mutations)
        parent: Any = event
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            if kind == "drop":
                del parent[last]
            elif kind == "replace":
                parent[last] = value
            elif kind == "huge-list":
                parent[last] = [parent[last]] * value
            else:
                parent[last] = "x" * value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    parse(event)


@given(value=s.json_values, picked=st.lists(st.sampled_from(PATHS), min_size=1, max_size=8, unique=True))
def test_fields_with_a_wrong_type(value: Any, picked: list[tuple[Any, ...]]) -> None:
    for path in picked:
        event = copy.deepcopy(VALID)
        parent: Any = event
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        parse(event)


@given(headers=st.lists(st.tuples(s.any_text, s.any_text), max_size=20), recipients=st.lists(s.any_text, max_size=5))
def test_any_strings_are_carried_through(headers: list[tuple[str, str]], recipients: list[str]) -> None:
    mail = parse(s.ses_event(headers=headers, mail_from="a@good.test", recipients=recipients))
    assert mail is not None
    assert list(mail.headers) == headers and list(mail.recipients) == recipients
