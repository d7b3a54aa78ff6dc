"""The deploy rehearsal's pure parts: README's blocks found by role, the deploy line's additions, the
settings-to-parameters map, and LocalStack's "deployed as a fallback" read from its log."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from devstack import sam_template
from devstack.docker_engine import EngineError
from devstack.localstack_server import LocalStackServer
from devstack.rehearsal import append_overrides, deploy_blocks, setting_parameters


def test_readme_deploy_has_every_block_the_rehearsal_runs() -> None:
    blocks = deploy_blocks()
    assert set(blocks) == {"deploy", "outputs", "enforce", "rollback", "own_slot", "redeploy"}
    deploy = blocks["deploy"].splitlines()
    assert deploy[0] == "sam build" and deploy[1].startswith("sam deploy --parameter-overrides ")
    assert "sam delete" in blocks["rollback"] and "ipv6gate tenants list" in blocks["outputs"]
    assert '"$DOMAIN"' in blocks["enforce"]
    # The kept table's block is not the first deploy's, though both are `sam deploy`.
    assert "ExistingTenantsTable=$TENANTS_TABLE" in blocks["redeploy"]
    assert "ExistingTenantsTable" not in blocks["deploy"]


def test_a_readme_without_a_block_is_one_line(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Deploy\n\n```sh\nsam build\nsam deploy\n```\n\n## Next\n", encoding="utf-8")
    with pytest.raises(EngineError, match=r"no ```sh block for enforce, outputs, own_slot, redeploy, rollback"):
        deploy_blocks(readme)


def test_overrides_are_appended_to_the_deploy_line_only() -> None:
    block = 'sam build\nsam deploy --parameter-overrides "Recipients=$RECIPIENTS"\necho sam deploy done'
    out = append_overrides(block, {"DnsServers": "172.17.0.1:5353", "PtrMode": "fcrdns"}).splitlines()
    assert out[0] == "sam build" and out[2] == "echo sam deploy done"
    words = shlex.split(out[1])
    assert words[-2:] == ["DnsServers=172.17.0.1:5353", "PtrMode=fcrdns"]
    assert append_overrides(block, {}) == block


def test_every_gate_setting_a_set_may_use_maps_to_its_parameter() -> None:
    template = sam_template.load_template()
    names = setting_parameters(template)
    assert names["PTR_MODE"] == "PtrMode" and names["TEMPERROR_ACTION"] == "TemperrorAction"
    assert names["TENANT_CACHE_SECONDS"] == "TenantCacheSeconds"
    assert set(names.values()) <= set(template["Parameters"])
    # Table, bucket and queue names come from the stack's resources, not from parameters.
    assert "TENANTS_TABLE" not in names and "BOUNCE_QUEUE_URL" not in names


def test_fallback_deployments_are_read_from_the_log(tmp_path: Path) -> None:
    server = LocalStackServer(
        docker_host="unix:///x", bridge_ip="127.0.0.2", image="i", arch="arm64", state_dir=tmp_path
    )
    assert server.faked_resources() == []  # no log yet
    server.log_path.write_text(
        'WARN No resource provider found for "AWS::Foo::Bar". To find out ...\n'
        'WARN No resource provider found for "AWS::Foo::Bar". again\n'
        'WARN No resource provider found for "Custom::Thing".\n',
        encoding="utf-8",
    )
    assert server.faked_resources() == ["AWS::Foo::Bar", "Custom::Thing"]


def test_proc_net_addresses_are_decoded() -> None:
    from devstack.localstack_server import _address

    assert _address("0100007F") == "127.0.0.1"
    assert _address("010011AC") == "172.17.0.1"
    assert _address("00000000000000000000000001000000") == "::1"
