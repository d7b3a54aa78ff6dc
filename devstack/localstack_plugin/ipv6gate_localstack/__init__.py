"""ipv6gate's deploy rehearsal: what LocalStack (community, offline) lacks, each as small as it can be.

- ``providers``: DynamoDB served by moto (LocalStack's own downloads DynamoDB Local, a Java jar);
  SES with ``DeleteReceiptRule``, ``ReorderReceiptRuleSet`` and a recording ``SendBounce``, which
  LocalStack's SES (moto's) does not have.
- ``ses_rules``: CloudFormation providers for ``AWS::SES::ReceiptRuleSet`` and ``AWS::SES::ReceiptRule``.
- ``custom_resources``: Lambda-backed ``Custom::*`` resources (a LocalStack Pro feature): the
  function is invoked with CloudFormation's request and answers on a pre-signed S3 URL.
- ``dashboard``: a CloudFormation provider for ``AWS::CloudWatch::Dashboard`` (over PutDashboard).
- ``engine_fixes``: LocalStack's change-set engine leaves a list parameter's previous value untyped on
  an update (``Fn::Join`` over ``Recipients`` fails); typed at start, as CloudFormation does. And it
  resolves references before the SAM transform (a ``Ref`` to SAM's generated role fails); that pass
  is skipped for a template without ``Fn::Transform``.
- ``lambda_hooks``: the runtime image is used as it is (no ``docker pull`` of a local image) and the
  function's layers are copied to ``/opt`` (the community build does not mount layers).

README "Deploy rehearsal" lists each with what it does not prove.
"""
