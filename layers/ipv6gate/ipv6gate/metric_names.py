"""Every metric the gate, the bouncer and the milter emit, by name: the one list emitters and the dashboard share.

Powertools writes them as EMF under POWERTOOLS_METRICS_NAMESPACE with one dimension, ``service``
(POWERTOOLS_SERVICE_NAME); its own ``ColdStart`` adds ``function_name``. ``tests/template/test_dashboard.py``
holds the dashboard in template.yaml to these sets.
"""

from __future__ import annotations

from ipv6gate.decision.replies import STATUSES
from ipv6gate.decision.rule import CHECK_NAMES, Disposition

# --- the gate (entrypoints/lambda_gate.py) ----------------------------------------------------------
DECISIONS = "Decisions"
DECISIONS_WITH_NOTES = "DecisionsWithNotes"
DECISION_ERRORS = "DecisionErrors"
MALFORMED_EVENTS = "MalformedEvents"
RECIPIENTS_ACCEPTED = "RecipientsAccepted"
RECIPIENTS_REJECTED = "RecipientsRejected"
RECIPIENTS_MONITOR_WOULD_REJECT = "RecipientsMonitorWouldReject"
BOUNCES_QUEUED = "BouncesQueued"
BOUNCES_SUPPRESSED = "BouncesSuppressed"  # the gate (policy said no) and the bouncer (sender unproven)

# The decision's machine-readable faults (evaluation/record.py), each counted as <Fault>Failures.
FAULTS = ("tenant_lookup", "bounce_queue", "trace_write", "message_store")
REPLY_STATUSES = STATUSES  # each enforced reply by its enhanced code

# --- the bouncer (aws/ses_bounces.py, functions/bouncer/app.py) -----------------------------------
BOUNCES_SENT = "BouncesSent"
BOUNCES_EXPIRED = "BouncesExpired"
BOUNCE_DELAY = "BounceDelay"  # seconds from receipt to SendBounce
BOUNCE_THROTTLED = "BounceThrottled"
BOUNCE_DEFERRED = "BounceDeferred"  # out of invocation time: the record is redelivered
BOUNCE_AUTH_DEFERRED = "BounceAuthDeferred"
BOUNCE_SEND_ERRORS = "BounceSendErrors"
MALFORMED_BOUNCE_REQUESTS = "MalformedBounceRequests"
BOUNCE_DUPLICATES_SKIPPED = "BounceDuplicatesSkipped"

# --- the milter (entrypoints/milter_cli.py) --------------------------------------------------------
DECISIONS_NOT_RECORDED = "DecisionsNotRecorded"  # the recorder queue was full: logged, not traced or counted

# --- both, from Powertools (log_metrics(capture_cold_start_metric=True)) ------------------------------
COLD_START = "ColdStart"


def _camel(value: str) -> str:
    return "".join(part.capitalize() for part in value.lower().split("_"))


def disposition(value: Disposition) -> str:
    return f"Disposition{_camel(value.value)}"


def failures(fault: str) -> str:
    """``tenant_lookup`` -> ``TenantLookupFailures``."""
    return f"{_camel(fault)}Failures"


def reply(status: str) -> str:
    """An enforced reply by its enhanced code: ``4.7.25`` -> ``Reply4_7_25``."""
    return f"Reply{status.replace('.', '_')}"


def temperror(check: str) -> str:
    """``iprev`` -> ``TempErrorIprev``."""
    return f"TempError{check.capitalize()}"


GATE = frozenset(
    {
        DECISIONS,
        DECISIONS_WITH_NOTES,
        DECISION_ERRORS,
        MALFORMED_EVENTS,
        RECIPIENTS_ACCEPTED,
        RECIPIENTS_REJECTED,
        RECIPIENTS_MONITOR_WOULD_REJECT,
        BOUNCES_QUEUED,
        BOUNCES_SUPPRESSED,
        COLD_START,
        *(disposition(d) for d in Disposition),
        *(failures(f) for f in FAULTS),
        *(reply(s) for s in REPLY_STATUSES),
        *(temperror(c) for c in CHECK_NAMES),
    }
)
BOUNCER = frozenset(
    {
        BOUNCES_SENT,
        BOUNCES_EXPIRED,
        BOUNCES_SUPPRESSED,
        BOUNCE_DELAY,
        BOUNCE_THROTTLED,
        BOUNCE_DEFERRED,
        BOUNCE_AUTH_DEFERRED,
        BOUNCE_SEND_ERRORS,
        MALFORMED_BOUNCE_REQUESTS,
        BOUNCE_DUPLICATES_SKIPPED,
        COLD_START,
    }
)
MILTER = frozenset({DECISIONS_NOT_RECORDED})  # besides the gate's, which the milter emits as well
