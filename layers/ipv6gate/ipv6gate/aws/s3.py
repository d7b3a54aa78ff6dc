"""Raw messages where the receipt rule's S3 action put them: ``<prefix><messageId>``."""

from __future__ import annotations

from typing import Any, BinaryIO

from ipv6gate.ports import MessageStoreError


class S3MessageStore:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix

    def location(self, message_id: str) -> str:
        return f"s3://{self._bucket}/{self._prefix}{message_id}"

    def open(self, message_id: str, max_bytes: int) -> BinaryIO:
        """botocore's ``StreamingBody`` for the object, after checking its size against ``max_bytes``."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = f"{self._prefix}{message_id}"
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            missing = code in ("NoSuchKey", "404", "NotFound")
            raise MessageStoreError(f"{self.location(message_id)}: {code}", missing=missing) from None
        except BotoCoreError as exc:
            raise MessageStoreError(f"{self.location(message_id)}: {_said(exc)}") from None
        body: BinaryIO = response["Body"]
        size = int(response.get("ContentLength", 0))
        if size > max_bytes:
            body.close()
            raise MessageStoreError(
                f"{self.location(message_id)} is {size} bytes, over the {max_bytes} limit", too_large=True
            )
        return body


def _said(exc: Exception) -> str:
    """botocore's own sentence ("Could not connect to the endpoint URL: ..."), never its class name."""
    return " ".join(str(exc).split()) or "AWS SDK error"
