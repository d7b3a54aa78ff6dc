"""Lambda hooks: use the runtime image that is already loaded; put each layer under ``/opt``."""

from __future__ import annotations

from typing import Any

from localstack.services.lambda_.hooks import prepare_docker_executor, start_docker_executor


@prepare_docker_executor()
def use_local_image(function_version: Any) -> None:
    """LocalStack pulls the runtime image before each new function version; offline the pull fails even
    for an image the engine has (``LAMBDA_RUNTIME_IMAGE_MAPPING`` names the project's). One that is
    present is marked as pulled; one that is missing is still pulled (and fails, saying so)."""
    from localstack.services.lambda_.invocation import docker_runtime_executor as executor
    from localstack.utils.container_utils.container_client import NoSuchImage

    image = executor.resolver.get_image_for_runtime(function_version.config.runtime)
    platform = executor.docker_platform(function_version.config.architectures[0])
    try:
        executor.CONTAINER_CLIENT.inspect_image(image, pull=False)
    except NoSuchImage:
        return
    executor.PULLED_IMAGES.add((image, platform))


@start_docker_executor()
def copy_layers(container_config: Any, function_version: Any) -> None:
    """The community build starts the container without the function's layers; Lambda extracts them
    under ``/opt`` in order, later layers over earlier ones. Copied in that order before the start."""
    for layer in function_version.config.layers or []:
        layer.code.prepare_for_execution()
        container_config.copy_folders.append((f"{layer.code.get_unzipped_code_location()}/.", "/opt"))
