"""Run the bouncer function the way Lambda's SQS event source runs it, against a real (moto) queue.

``run_bouncer_on_queue`` is the reusable piece: receive up to one batch from a queue URL, hand it to
the handler as Lambda's SQS event, then do what Lambda does with the answer (delete the records
that did not fail; when the handler raised, delete nothing). ``drain_bounce_queue`` repeats that
until the queue is empty, which is how a test drives redelivery into the dead-letter queue.
``load_bouncer_app`` imports ``functions/bouncer/app.py`` as a fresh module (a cold start); set its
environment first.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BOUNCER_APP = REPO / "functions" / "bouncer" / "app.py"

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def load_bouncer_app(module_name: str | None = None) -> ModuleType:
    """Import the bouncer's ``app.py`` under a unique module name, as one Lambda cold start does."""
    name = module_name or f"bouncer_app_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, BOUNCER_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeLambdaContext:
    """What Powertools reads from a Lambda context, with a real deadline."""

    timeout_s: float = 60.0
    function_name: str = "ipv6gate-BouncerFunction"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:ipv6gate-BouncerFunction"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._started)) * 1000))


@dataclass
class BatchRun:
    """One invocation: what was received, what the handler reported, what was deleted."""

    received: list[dict[str, Any]]  # the SQS messages (MessageId, Body, Attributes, ...)
    response: dict[str, Any] | None  # the handler's answer; None when it raised
    error: BaseException | None
    failed_ids: list[str]  # message ids left on the queue for redelivery
    deleted_ids: list[str]

    @property
    def bodies(self) -> list[str]:
        return [m["Body"] for m in self.received]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """Lambda's SQS event for messages as ``ReceiveMessage`` returned them."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": dict(m.get("Attributes", {})),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def run_bouncer_on_queue(
    sqs: Any,
    queue_url: str,
    handler: Handler,
    *,
    batch_size: int = 10,
    visibility_timeout: int | None = None,
    wait_seconds: int = 0,
    context: Any = None,
) -> BatchRun | None:
    """Receive one batch from ``queue_url`` and run the bouncer's handler on it; ``None`` if empty.

    Lambda's rules afterwards: with ``ReportBatchItemFailures`` the records named in
    ``batchItemFailures`` stay on the queue and the others are deleted; when the handler raises
    (Powertools does when every record failed) nothing is deleted. ``visibility_timeout=0`` makes the
    failed records visible again at once, so a test can redeliver them without waiting.
    """
    receive: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": batch_size,
        "WaitTimeSeconds": wait_seconds,
        "AttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
    }
    if visibility_timeout is not None:
        receive["VisibilityTimeout"] = visibility_timeout
    messages = sqs.receive_message(**receive).get("Messages", [])
    if not messages:
        return None
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    queue_arn = attributes["QueueArn"]
    region = queue_arn.split(":")[3]
    response: dict[str, Any] | None = None
    error: BaseException | None = None
    try:
        response = handler(sqs_event(messages, queue_arn, region), context or FakeLambdaContext())
    except Exception as exc:  # Lambda: the invocation failed, every record is redelivered
        error = exc
    ids = [m["MessageId"] for m in messages]
    if response is None:
        failed = ids
    else:
        failed = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
        assert set(failed) <= set(ids), f"unknown itemIdentifier in {failed}"
    deleted = []
    for m in messages:
        if m["MessageId"] not in failed:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            deleted.append(m["MessageId"])
    return BatchRun(messages, response, error, failed, deleted)


def drain_bounce_queue(
    sqs: Any,
    queue_url: str,
    handler: Handler,
    *,
    max_batches: int = 20,
    visibility_timeout: int = 0,
) -> list[BatchRun]:
    """``run_bouncer_on_queue`` until a receive comes back empty (or ``max_batches``)."""
    runs: list[BatchRun] = []
    for _ in range(max_batches):
        run = run_bouncer_on_queue(sqs, queue_url, handler, visibility_timeout=visibility_timeout)
        if run is None:
            return runs
        runs.append(run)
    raise AssertionError(f"queue {queue_url} not empty after {max_batches} batches")
