"""Benchmarks of the gate: decision latency against the DNS critical path, cold start, CPU, DKIM memory.

``make bench`` runs ``python -m bench.run``; ``bench/README.md`` says what each number means.
"""
