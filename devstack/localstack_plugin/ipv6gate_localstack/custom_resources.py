"""CloudFormation custom resources (``Custom::*``), which only LocalStack Pro provides.

Does what CloudFormation does for a Lambda-backed custom resource: invokes the ``ServiceToken``
function (asynchronously, as CloudFormation does) with the documented request (``RequestType``,
``ResponseURL``, ``StackId``, ``RequestId``, ``ResourceType``, ``LogicalResourceId``,
``PhysicalResourceId``, ``ResourceProperties``, ``OldResourceProperties``), waits for the response
document the function PUTs to the pre-signed ``ResponseURL`` (an object in LocalStack's S3), and
takes from it the status, the reason, the physical id (``Ref``) and ``Data`` (``Fn::GetAtt``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, ClassVar

from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

BUCKET = "ipv6gate-rehearsal-custom-resources"
TIMEOUT = 900.0  # an emulated cold start takes tens of seconds; CloudFormation itself waits an hour
# (stack, logical id) -> physical id: CloudFormation sends it back on update and delete.
_physical: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


class CustomResourceProvider(ResourceProvider[dict[str, Any]]):
    TYPE = "AWS::CloudFormation::CustomResource"
    SCHEMA: ClassVar[dict[str, list[str]]] = {"primaryIdentifier": ["/properties/PhysicalResourceId"]}

    def create(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        return self._call(request, "Create")

    def update(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        return self._call(request, "Update")

    def delete(self, request: ResourceRequest[dict[str, Any]]) -> ProgressEvent[Any]:
        return self._call(request, "Delete")

    def _call(self, request: ResourceRequest[dict[str, Any]], kind: str) -> ProgressEvent[Any]:
        from localstack import config

        key = (request.stack_name, request.logical_resource_id)
        properties = dict(request.desired_state)
        request_id = str(uuid.uuid4())
        s3 = request.aws_client_factory.s3
        with _lock:
            if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                options = {}
                if request.region_name != "us-east-1":
                    options = {"CreateBucketConfiguration": {"LocationConstraint": request.region_name}}
                s3.create_bucket(Bucket=BUCKET, **options)
        object_key = f"{request.stack_name}/{request.logical_resource_id}/{request_id}"
        event: dict[str, Any] = {
            "RequestType": kind,
            "ServiceToken": properties["ServiceToken"],
            "ResponseURL": _presigned_put(request, object_key, config),
            "StackId": request.stack_id,
            "RequestId": request_id,
            "ResourceType": request.resource_type,
            "LogicalResourceId": request.logical_resource_id,
            "ResourceProperties": properties,
        }
        if kind != "Create":
            event["PhysicalResourceId"] = _physical.get(key, request.logical_resource_id)
        if kind == "Update" and request.previous_state is not None:
            event["OldResourceProperties"] = dict(request.previous_state)
        request.aws_client_factory.lambda_.invoke(
            FunctionName=properties["ServiceToken"], InvocationType="Event", Payload=json.dumps(event).encode()
        )
        answer = _wait_for(s3, object_key)
        if answer.get("Status") != "SUCCESS":
            return ProgressEvent(
                status=OperationStatus.FAILED,
                resource_model={},
                message=str(answer.get("Reason") or "the custom resource answered FAILED"),
            )
        if kind == "Delete":
            _physical.pop(key, None)
            return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=None)
        physical = str(answer.get("PhysicalResourceId") or request_id)
        _physical[key] = physical
        data = {k: v if isinstance(v, list | dict) else str(v) for k, v in (answer.get("Data") or {}).items()}
        model = {**properties, **data, "PhysicalResourceId": physical}
        return ProgressEvent(status=OperationStatus.SUCCESS, resource_model=model)


def _presigned_put(request: ResourceRequest[dict[str, Any]], key: str, config: Any) -> str:
    """A URL the function's container can reach: LocalStack as the containers see it."""
    import boto3

    endpoint = f"http://{config.HOSTNAME_FROM_LAMBDA}:{config.GATEWAY_LISTEN[0].port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=request.region_name,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    url: str = client.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=int(TIMEOUT) + 60
    )
    return url


def _wait_for(s3: Any, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            time.sleep(1)
            continue
        answer: dict[str, Any] = json.loads(body)
        return answer
    return {"Status": "FAILED", "Reason": f"no response from the custom resource's function within {TIMEOUT:.0f} s"}


class CustomResourcePlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::CloudFormation::CustomResource"

    def __init__(self) -> None:
        self.factory: type[ResourceProvider[Any]] | None = None

    def load(self) -> None:
        self.factory = CustomResourceProvider
