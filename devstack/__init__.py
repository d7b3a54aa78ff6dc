"""The local world ipv6gate is tried in: never part of the product, which never imports it.

Knot, moto server with the template's resources, the delaying DNS proxy, a private Postfix, a
private dockerd with the offline arm64 Lambda image, LocalStack, SAM CLI's local Lambda and an
in-process runner, and the scenario sets. Used by ``make demo``, ``sandbox``, ``local``,
``smtp-demo``, ``deploy-rehearsal``, the benchmarks, the load test, the fuzzer and the tests;
import-linter (``pyproject.toml``) keeps ``ipv6gate`` from importing it and it from importing ``tests``.
"""
