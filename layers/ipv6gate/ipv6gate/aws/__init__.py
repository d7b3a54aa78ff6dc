"""The AWS edge: DynamoDB (tenants, with a TTL cache; trace), S3 (raw messages), SQS (bounce queue).

AWS errors become the core's own errors here (``TenantLookupError``, ``MessageStoreError``, ...).
"""
