"""The front doors' bodies: the Lambda gate's event handling and the ``ipv6gate`` CLI."""
