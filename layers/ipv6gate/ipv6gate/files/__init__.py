"""Adapters over local files, for production use beside the AWS ones (``--tenants FILE``)."""
