"""Raw messages where the receipt rule's S3 action put them: ``<prefix><messageId>``."""

from __future__ import annotations

from collections.abc import Callable
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


class BucketNotEmptied(MessageStoreError):
    """Time ran out with objects left in the bucket."""

    def __init__(self, bucket: str, deleted: int) -> None:
        super().__init__(f"s3://{bucket}: {deleted} objects deleted, more left when time ran out")
        self.deleted = deleted


class S3BucketEmptier:
    """Deletes every object of an unversioned bucket (the stack's message bucket), so its delete can succeed."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def empty(self, bucket: str, out_of_time: Callable[[], bool] = lambda: False) -> int:
        """Objects deleted; a bucket that no longer exists counts as empty. ``BucketNotEmptied`` when
        ``out_of_time()`` says so before a page is deleted (the caller must answer while it can)."""
        from botocore.exceptions import BotoCoreError, ClientError

        deleted = 0
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                if out_of_time():
                    raise BucketNotEmptied(bucket, deleted)
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if not keys:
                    continue
                # One page is at most 1000 keys, DeleteObjects' own limit.
                answer = self._client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                errors = answer.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise MessageStoreError(
                        f"s3://{bucket}/{first.get('Key')}: {first.get('Code')} ({len(errors)} objects not deleted)"
                    )
                deleted += len(keys)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
            if code == "NoSuchBucket":
                return deleted
            raise MessageStoreError(f"s3://{bucket}: {code}") from None
        except BotoCoreError as exc:
            raise MessageStoreError(f"s3://{bucket}: {_said(exc)}") from None
        return deleted
