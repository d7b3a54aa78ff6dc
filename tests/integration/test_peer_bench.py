"""``make bench``'s peers section (bench/peers.py) runs: each configuration, its replies, DNS via the proxy.

A few sessions per configuration with a short DNS delay, so the three-way harness cannot rot
between benchmark runs. No timing is asserted: only what each configuration answered and which
program's DNS reached the proxy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.peers import SCENARIOS, config_blocks, measure_peers
from bench.peers_table import peer_sections, peer_targets

pytestmark = pytest.mark.integration

PTR_GOOD = "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. PTR"


def test_the_three_configurations_run_and_answer_as_documented(tmp_path: Path) -> None:
    results = measure_peers(tmp_path, delay_ms=5.0, iterations=2, runs=[(3, 6)], timeout=120)
    configs = results["configs"]
    assert set(configs) == {"alone", "chain", "ipv6gate"}
    for name, row in configs.items():
        for sc in SCENARIOS:
            assert row["latency"][sc.name]["replies"] == [sc.expected[name]], (name, sc.name)
        (load,) = row["throughput"]
        assert load["replies"] == {f"{sc.name}: {sc.expected[name]}": 2 for sc in SCENARIOS}, name
        assert load["cpu_seconds"] >= 0
    assert results["verdicts_ok"]

    # Each program's DNS went through the delaying proxy: Postfix's PTR (every configuration),
    # pyspf-milter's SPF TXT and OpenDKIM's key TXT (the chain), the milter's own lookups.
    for name in configs:
        assert configs[name]["latency"]["spf-pass"]["queries"].get(PTR_GOOD, 0) >= 2, name
    chain = configs["chain"]["latency"]
    assert chain["spf-pass"]["queries"].get("good.test. TXT") == 2
    assert chain["dkim-pass"]["queries"].get("rsa._domainkey.good.test. TXT") == 2
    gate = configs["ipv6gate"]["latency"]
    assert gate["dkim-pass"]["queries"].get("rsa._domainkey.good.test. TXT") == 2
    assert "good.test. TXT" not in configs["alone"]["latency"]["spf-pass"]["queries"]

    titles = [title for title, *_ in peer_sections({"peers": results})]
    assert len(titles) == 2
    statuses = [t["status"] for t in peer_targets({"peers": results})]
    assert len(statuses) == 2 and set(statuses) <= {"PASS", "MISS", "n/a"}  # one per load run, and the DKIM reply
    assert all(not row["peers_died"] for row in configs.values())


def test_the_blocks_the_bench_runs_are_the_readmes() -> None:
    blocks = config_blocks()
    assert "smtpd_client_restrictions = reject_unknown_client_hostname" in blocks["peers-chain.cf"]
    assert "Mode v" in blocks["opendkim.conf"].splitlines()
    assert "Mail_From_reject = False" in blocks["pyspf-milter.conf"].splitlines()
