"""The AWS edge: real adapters for the ports, plus in-memory ones for tests and offline use.

AWS errors become the core's own errors here (``TenantLookupError``, ``MessageStoreError``).
"""
