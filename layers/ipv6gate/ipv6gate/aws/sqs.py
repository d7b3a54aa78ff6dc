"""Bounce requests onto the SQS queue the bouncer function drains."""

from __future__ import annotations

from typing import Any

from ipv6gate.bounce.request import BounceRequest
from ipv6gate.ports import BounceQueueError


class SqsBounceQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, request: BounceRequest) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=request.to_json())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "ClientError")
            raise BounceQueueError(f"SQS {self._queue_url}: {code}") from None
        except BotoCoreError as exc:
            raise BounceQueueError(f"SQS {self._queue_url}: {_said(exc)}") from None


def _said(exc: Exception) -> str:
    """botocore's own sentence ("Could not connect to the endpoint URL: ..."), never its class name."""
    return " ".join(str(exc).split()) or "AWS SDK error"
