"""The query's wire form, written here instead of by ``dns.message.Message.to_wire``.

dnspython compresses names when it writes a message, and its compression builds and hashes a
``Name`` for every suffix of every name: for an IPv6 PTR name (34 labels) that is most of a
millisecond per query. A query has one question and nothing to compress, so its wire form is the
12-octet header, the name uncompressed, the type and the class (RFC 1035 §4.1). Tested to equal
dnspython's own output for the same id and flags.
"""

from __future__ import annotations

import struct

import dns.name
import dns.rdataclass
import dns.rdatatype

_HEADER = struct.Struct("!HHHHHH")  # id, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
_TYPE_CLASS = struct.Struct("!HH")


def question(name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> bytes:
    """The question section: the absolute ``name`` uncompressed, ``rdtype``, class IN."""
    wire = name.to_wire()  # no file given: the bytes, uncompressed; raises for a relative name
    assert wire is not None
    return wire + _TYPE_CLASS.pack(rdtype, dns.rdataclass.IN)


def query(qid: int, flags: int, question_wire: bytes) -> bytes:
    """A query message with one question (from ``question``) and no other records."""
    return _HEADER.pack(qid, flags, 1, 0, 0, 0) + question_wire


def cache_key(question_wire: bytes) -> bytes:
    """The question with the name case-folded: one key per name whatever its spelling (RFC 4343).

    Label lengths are at most 63, below ``A`` (65), so only the labels' letters change.
    """
    return question_wire.lower()
