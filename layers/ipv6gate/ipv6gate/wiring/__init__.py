"""The composition root: the one place that reads settings into objects and makes AWS clients, for every
process (the gate's Lambda, the bouncer, the stack setup, the milter, each CLI command).

``adapters`` builds the DNS layer and the adapters, ``processes`` assembles each process's objects
from them, ``probes`` holds the milter's start-time checks. Entry points call these once per process
(per cold start).
"""

from ipv6gate.wiring.adapters import (
    Clients,
    aws_client,
    aws_region,
    build_bounce_queue,
    build_dns,
    build_messages,
    build_tenant_admin,
    build_tenants,
    build_trace,
    build_trace_reader,
    caller_identity,
    file_tenants,
    ses_bounce_client,
    stack_output_of,
)
from ipv6gate.wiring.probes import probe_smtp_stack
from ipv6gate.wiring.processes import (
    assemble_gate,
    assemble_smtp_gate,
    build_bouncer,
    build_gate,
    build_sender_proof,
    build_smtp_gate,
    build_stack_setup,
)

__all__ = [
    "Clients",
    "assemble_gate",
    "assemble_smtp_gate",
    "aws_client",
    "aws_region",
    "build_bounce_queue",
    "build_bouncer",
    "build_dns",
    "build_gate",
    "build_messages",
    "build_sender_proof",
    "build_smtp_gate",
    "build_stack_setup",
    "build_tenant_admin",
    "build_tenants",
    "build_trace",
    "build_trace_reader",
    "caller_identity",
    "file_tenants",
    "probe_smtp_stack",
    "ses_bounce_client",
    "stack_output_of",
]
