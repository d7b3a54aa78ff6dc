"""ipv6gate's deploy rehearsal: what LocalStack (community, offline) lacks, each as small as it can be.

- ``providers``: DynamoDB served by moto (LocalStack's own downloads DynamoDB Local, a Java jar);
  SES with ``DeleteReceiptRule``, ``ReorderReceiptRuleSet`` and a recording ``SendBounce``, which
  LocalStack's SES (moto's) does not have.
- ``ses_rules``: CloudFormation providers for ``AWS::SES::ReceiptRuleSet`` and ``AWS::SES::ReceiptRule``.
- ``lambda_hooks``: the runtime image is used as it is (no ``docker pull`` of a local image) and the
  function's layers are copied to ``/opt`` (the community build does not mount layers).

README "Deploy rehearsal" lists each with what it does not prove.
"""
