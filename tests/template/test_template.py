"""Static checks of template.yaml (SAM) without AWS access.

The template is read with cfn-lint's decoder (``devstack/sam_template.load_template``: short-form
tags such as !Ref and !Sub become their long forms), and additionally expanded with the SAM translator
(offline) so that the IAM roles SAM generates are checked too.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from devstack.sam_template import load_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"

# The only actions allowed with Resource "*": SES receipt-rule-set and identity-listing APIs without
# resource-level permissions, each named in its function's IamJustification.
SES_NO_RESOURCE_ACTIONS = {
    "ses:SetActiveReceiptRuleSet",
    "ses:DescribeActiveReceiptRuleSet",
    "ses:DescribeReceiptRuleSet",
    "ses:ListIdentities",
}
ALLOWED_MANAGED_POLICIES = {
    "service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess",
}

# The tenants table: the stack's own, or the operator's existing one (ExistingTenantsTable).
TENANTS_NAME = {"Fn::If": ["CreateTenantsTable", {"Ref": "TenantsTable"}, {"Ref": "ExistingTenantsTable"}]}
TENANTS_ARN = {
    "Fn::If": [
        "CreateTenantsTable",
        {"Fn::GetAtt": ["TenantsTable", "Arn"]},
        {"Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ExistingTenantsTable}"},
    ]
}

# env var -> (parameter name, default) ; None = fixed literal / resource-derived
GATE_ENV = {
    "TENANTS_TABLE": None,
    "MESSAGE_BUCKET": None,
    "MESSAGE_PREFIX": ("MessagePrefix", "inbound/"),
    "DNS_SERVERS": ("DnsServers", ""),
    "DNS_QUERY_TIMEOUT_SECONDS": (None, "2"),
    "DECISION_BUDGET_SECONDS": (None, "10"),
    "DNS_QUERY_LIMIT": (None, "120"),
    "DNS_CACHE_SIZE": (None, "4096"),
    "TENANT_CACHE_SECONDS": (None, "30"),
    "PTR_MODE": ("PtrMode", "exists"),
    "TRUSTED_RECEIVERS": ("TrustedReceivers", ""),
    "TEMPERROR_ACTION": ("TemperrorAction", "accept"),
    "SPF_VOID_LOOKUP_LIMIT": (None, "2"),
    "DKIM_MAX_SIGNATURES": (None, "5"),
    "MESSAGE_MAX_BYTES": (None, "41943040"),
    "BOUNCE_QUEUE_URL": None,
    "BOUNCE_MODE": ("BounceMode", "authenticated"),
    "TRACE_TABLE": None,
    "TRACE_TTL_DAYS": ("TraceTtlDays", "30"),
    "POWERTOOLS_SERVICE_NAME": None,
    "POWERTOOLS_METRICS_NAMESPACE": None,
    "LOG_LEVEL": None,
}


# --------------------------------------------------------------------------- loading
@pytest.fixture(scope="module")
def tpl() -> dict:
    return load_template()


@pytest.fixture(scope="module")
def resources(tpl) -> dict:
    return tpl["Resources"]


def of_type(resources: dict, rtype: str) -> dict:
    return {k: v for k, v in resources.items() if v["Type"] == rtype}


def only(resources: dict, rtype: str) -> tuple[str, dict]:
    found = of_type(resources, rtype)
    assert len(found) == 1, f"expected exactly one {rtype}, found {sorted(found)}"
    return next(iter(found.items()))


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def gate(resources) -> dict:
    assert "GateFunction" in resources, "GateFunction resource missing"
    return resources["GateFunction"]


def fn_prop(tpl: dict, fn: dict, key: str):
    """Function property with SAM Globals applied."""
    props = fn.get("Properties", {})
    if key in props:
        return props[key]
    return tpl.get("Globals", {}).get("Function", {}).get(key)


def sub_string(value) -> str:
    assert isinstance(value, dict) and "Fn::Sub" in value, f"expected !Sub, got {value!r}"
    sub = value["Fn::Sub"]
    return sub if isinstance(sub, str) else sub[0]


def sam_transform() -> dict:
    """Expand the SAM template offline (no IAM look-ups are needed for it)."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.session.Session(region_name="eu-west-1")  # no credentials needed
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=session)
    params = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    template = load_template()  # fresh copy: the translator mutates its input
    for res in template["Resources"].values():  # local paths -> S3 URIs, as `sam package` would
        for key in ("CodeUri", "ContentUri"):
            if isinstance(res.get("Properties", {}).get(key), str):
                res["Properties"][key] = "s3://bucket/key.zip"
    try:
        return translator.translate(sam_template=template, parameter_values=params, get_managed_policy_map=lambda: {})
    except InvalidDocumentException as exc:  # pragma: no cover - reported as failure
        pytest.fail("SAM transform failed: " + "; ".join(str(e) for e in exc.causes))


# --------------------------------------------------------------------------- IAM
def statements_of(document_statements) -> list:
    """A policy's statements, both branches of a conditional (Fn::If) statement included."""
    out = []
    for st in as_list(document_statements):
        if isinstance(st, dict) and "Fn::If" in st:
            out += [b for b in st["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}]
        else:
            out.append(st)
    return out


def iam_statements(resources: dict):
    """Yield (where, statement) for every identity-based policy statement."""
    for name, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            for i, pol in enumerate(as_list(props.get("Policies", []))):
                if isinstance(pol, dict) and "Statement" in pol:
                    for st in statements_of(pol["Statement"]):
                        yield f"{name}.Policies[{i}]", st
                else:
                    # Managed-policy names or SAM policy templates: not statically checkable here;
                    # the transformed-template test covers what they expand to.
                    yield f"{name}.Policies[{i}]", {"_unchecked": pol}
        elif res["Type"] == "AWS::IAM::Role":
            for pol in props.get("Policies", []):
                for st in statements_of(pol["PolicyDocument"]["Statement"]):
                    yield f"{name}.{pol.get('PolicyName')}", st
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            for st in statements_of(props["PolicyDocument"]["Statement"]):
                yield name, st


def check_statement(where: str, st: dict, justified: dict[str, str]) -> list[str]:
    problems = []
    if "_unchecked" in st:
        return [f"{where}: policy {st['_unchecked']!r} is not an inline statement"]
    if "NotAction" in st or "NotResource" in st:
        problems.append(f"{where}: NotAction/NotResource used")
    actions = as_list(st.get("Action", []))
    for action in actions:
        if not isinstance(action, str) or "*" in action:
            problems.append(f"{where}: wildcard or non-literal action {action!r}")
    if "*" in as_list(st.get("Resource", [])):
        owner = where.split(".", 1)[0]
        note = justified.get(owner) or justified.get(owner.removesuffix("Role"), "")
        ok = (
            st.get("Effect") == "Allow"
            and set(actions) <= SES_NO_RESOURCE_ACTIONS
            and all(a.removeprefix("ses:") in note for a in actions)
        )
        if not ok:
            problems.append(f"{where}: Resource '*' (only documented SES actions without resource-level permissions)")
    return problems


def justified_functions(resources: dict) -> dict[str, str]:
    """Function -> its IamJustification, where it documents why some SES actions need Resource '*'."""
    out = {}
    for name, res in resources.items():
        note = " ".join(str(res.get("Metadata", {}).get("IamJustification", "")).split())
        if "resource-level" in note and 'Resource "*"' in note:
            out[name] = note
    return out


def test_no_wildcard_iam_in_source(resources):
    justified = justified_functions(resources)
    statements = list(iam_statements(resources))
    assert statements, "no IAM statements found at all"
    problems = [p for where, st in statements for p in check_statement(where, st, justified)]
    assert not problems, "\n".join(problems)


def test_no_wildcard_iam_after_sam_transform(tpl, resources):
    out = sam_transform()
    roles = of_type(out["Resources"], "AWS::IAM::Role")
    assert {"GateFunctionRole", "StackSetupFunctionRole"} <= set(roles)
    justified = justified_functions(resources)
    problems = []
    for where, st in iam_statements(out["Resources"]):
        problems += check_statement(where, st, justified)
    for name, role in roles.items():
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            arn_s = sub_string(arn) if isinstance(arn, dict) else arn
            if arn_s.split(":policy/", 1)[-1] not in ALLOWED_MANAGED_POLICIES:
                problems.append(f"{name}: managed policy {arn_s} not allowed")
        principals = [s["Principal"] for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]]
        if principals != [{"Service": ["lambda.amazonaws.com"]}]:
            problems.append(f"{name}: unexpected trust policy {principals}")
    assert not problems, "\n".join(problems)


def test_gate_policies_least_privilege(resources):
    policies = as_list(gate(resources)["Properties"]["Policies"])
    statements = [st for pol in policies for st in as_list(pol["Statement"])]
    by_action = {}
    for st in statements:
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            by_action[action] = st["Resource"]
    # Exactly the calls the gate's adapters make: BatchGetItem (tenants), GetObject, SendMessage,
    # BatchWriteItem (trace, including the domain-per-day items).
    assert set(by_action) == {
        "dynamodb:BatchGetItem",
        "s3:GetObject",
        "sqs:SendMessage",
        "dynamodb:BatchWriteItem",
    }
    assert by_action["dynamodb:BatchGetItem"] == TENANTS_ARN
    assert by_action["sqs:SendMessage"] == {"Fn::GetAtt": ["BounceQueue", "Arn"]}
    assert by_action["dynamodb:BatchWriteItem"] == {"Fn::GetAtt": ["TraceTable", "Arn"]}
    s3_arn = sub_string(by_action["s3:GetObject"])
    s3_expected = r"arn:(\$\{AWS::Partition\}|aws):s3:::\$\{MessageBucket\}/\$\{MessagePrefix\}\*"
    assert re.fullmatch(s3_expected, s3_arn), s3_arn


# --------------------------------------------------------------------------- SES rule
def test_receipt_rule_actions_and_flags(resources):
    _, rule = only(resources, "AWS::SES::ReceiptRule")
    body = rule["Properties"]["Rule"]
    assert body.get("Enabled") is True
    assert body.get("ScanEnabled") is True
    assert body.get("TlsPolicy") == "Optional"
    # Empty Recipients = every recipient (SES: a rule without Recipients matches all); [""] is not valid.
    assert body.get("Recipients") == {"Fn::If": ["AllRecipients", {"Ref": "AWS::NoValue"}, {"Ref": "Recipients"}]}
    assert load_template()["Conditions"]["AllRecipients"] == {
        "Fn::Equals": [{"Fn::Join": [",", {"Ref": "Recipients"}]}, ""]
    }
    assert load_template()["Parameters"]["Recipients"]["Type"] == "CommaDelimitedList"
    actions = body["Actions"]
    assert [next(iter(a)) for a in actions] == ["S3Action", "LambdaAction"]
    s3, lam = actions[0]["S3Action"], actions[1]["LambdaAction"]
    assert s3["BucketName"] == {"Ref": "MessageBucket"}
    assert s3["ObjectKeyPrefix"] == {"Ref": "MessagePrefix"}
    assert "KmsKeyArn" not in s3, "use bucket default encryption, not client-side KMS"
    assert lam["InvocationType"] == "RequestResponse"
    assert lam["FunctionArn"] == {"Fn::GetAtt": ["GateFunction", "Arn"]}


def test_receipt_rule_depends_on_permission_and_bucket_policy(resources):
    _, rule = only(resources, "AWS::SES::ReceiptRule")
    deps = as_list(rule.get("DependsOn", []))
    dep_types = {resources[d]["Type"] for d in deps if d in resources}
    assert {"AWS::Lambda::Permission", "AWS::S3::BucketPolicy"} <= dep_types, deps
    perm_name, _ = only(resources, "AWS::Lambda::Permission")
    pol_name, pol = only(resources, "AWS::S3::BucketPolicy")
    assert perm_name in deps and pol_name in deps
    assert pol["Properties"]["Bucket"] == rule["Properties"]["Rule"]["Actions"][0]["S3Action"]["BucketName"]


# The rule's ARN, as the Lambda permission and the bucket policy must name it: the set the rule is
# actually in (RuleSetTarget's answer: the operator's set or the stack's own) and the rule's name.
RULE_ARN = (
    r"arn:(\$\{AWS::Partition\}|aws):ses:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
    r"receipt-rule-set/\$\{RuleSetTarget\.RuleSetName\}:receipt-rule/\$\{RuleName\}"
)


def test_permission_source_arn_matches_rule(tpl, resources):
    _, perm = only(resources, "AWS::Lambda::Permission")
    props = perm["Properties"]
    assert props["Principal"] == "ses.amazonaws.com"
    assert props["Action"] == "lambda:InvokeFunction"
    assert props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert props["FunctionName"] in ({"Fn::GetAtt": ["GateFunction", "Arn"]}, {"Ref": "GateFunction"})
    arn = sub_string(props["SourceArn"])
    assert re.fullmatch(RULE_ARN, arn), f"{arn!r} !~ {RULE_ARN!r}"
    _, rule = only(resources, "AWS::SES::ReceiptRule")
    assert rule["Properties"]["RuleSetName"] == {"Fn::GetAtt": ["RuleSetTarget", "RuleSetName"]}
    assert rule["Properties"]["Rule"]["Name"] == {"Ref": "RuleName"}


# --------------------------------------------------------------------------- code paths
def _defined_functions(source: str) -> set[str]:
    tree = ast.parse(source)
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for n in tree.body:  # lambda_handler = some_decorator(impl)
        if isinstance(n, ast.Assign):
            names.update(t.id for t in n.targets if isinstance(t, ast.Name))
    return names


def test_function_handlers_resolve(tpl, resources):
    functions = of_type(resources, "AWS::Serverless::Function")
    assert "GateFunction" in functions
    for name, fn in functions.items():
        props = fn["Properties"]
        module, _, func = fn_prop(tpl, fn, "Handler").rpartition(".")
        assert module and func, f"{name}: bad Handler"
        assert fn_prop(tpl, fn, "Runtime") == "python3.13", name
        assert fn_prop(tpl, fn, "Architectures") == ["arm64"], name
        if "InlineCode" in props:
            assert module == "index", f"{name}: inline code is deployed as index.py"
            source = props["InlineCode"]
        else:
            code_uri = props.get("CodeUri") or tpl.get("Globals", {}).get("Function", {}).get("CodeUri")
            assert isinstance(code_uri, str), f"{name}: CodeUri must be a local path"
            path = REPO / code_uri / (module.replace(".", "/") + ".py")
            assert path.is_file(), f"{name}: {path} missing"
            source = path.read_text(encoding="utf-8")
        assert func in _defined_functions(source), f"{name}: {func} not defined in {module}"


def test_layer(resources):
    name, layer = only(resources, "AWS::Serverless::LayerVersion")
    assert layer.get("Metadata", {}).get("BuildMethod") == "makefile"
    root = REPO / layer["Properties"]["ContentUri"]
    assert f"build-{name}:" in (root / "Makefile").read_text(encoding="utf-8"), "sam build runs make build-<id>"
    assert (root / "requirements.txt").is_file(), f"{root}/requirements.txt missing"
    assert (root / "ipv6gate" / "__init__.py").is_file(), "package must sit at the ContentUri root"
    assert not (root / "python").exists(), "SAM builds python/ itself; do not create it"
    assert {"Ref": name} in gate(resources)["Properties"]["Layers"]
    assert "python3.13" in layer["Properties"]["CompatibleRuntimes"]
    assert "arm64" in layer["Properties"]["CompatibleArchitectures"]


def test_functions_build_with_their_makefile(resources):
    """Each function is built by the same Makefile (the handler plus byte code), whose rule takes its name."""
    makefiles = set()
    for name, fn in of_type(resources, "AWS::Serverless::Function").items():
        if "InlineCode" in fn["Properties"]:
            continue
        assert fn.get("Metadata", {}).get("BuildMethod") == "makefile", name
        makefile = (REPO / fn["Properties"]["CodeUri"] / "Makefile").read_text(encoding="utf-8")
        assert "build-%:" in makefile, name
        makefiles.add(makefile)
    assert len(makefiles) == 1, "the functions' Makefiles differ: keep them one file"


def test_layer_requirements_match_the_package():
    """The layer ships the package's dependencies, except boto3, which the python3.13 runtime provides."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    layer_file = REPO / "layers" / "ipv6gate" / "requirements.txt"
    layer = [line.split("#")[0].strip() for line in layer_file.read_text().splitlines()]
    assert sorted(filter(None, layer)) == sorted(d for d in project if not d.startswith("boto3"))
    assert not any(d.startswith(("aws-xray-sdk", "aws-lambda-powertools[tracer")) for d in project)


# --------------------------------------------------------------------------- storage
def test_bucket_encrypted_private(resources):
    _, bucket = only(resources, "AWS::S3::Bucket")
    props = bucket["Properties"]
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert [r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules] == ["AES256"]
    pab = props["PublicAccessBlockConfiguration"]
    for key in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        assert pab.get(key) is True, key
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    lifecycle = props["LifecycleConfiguration"]["Rules"]
    assert any(
        r["Status"] == "Enabled" and r.get("ExpirationInDays") == {"Ref": "MessageRetentionDays"} for r in lifecycle
    )


def test_bucket_policy(resources):
    _, pol = only(resources, "AWS::S3::BucketPolicy")
    statements = pol["Properties"]["PolicyDocument"]["Statement"]
    tls = [
        s
        for s in statements
        if s["Effect"] == "Deny"
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
    ]
    assert len(tls) == 1, "TLS-only Deny statement missing"
    deny = tls[0]
    assert deny["Principal"] in ("*", {"AWS": "*"})
    assert "s3:*" in as_list(deny["Action"])
    resources_denied = as_list(deny["Resource"])
    assert {"Fn::GetAtt": ["MessageBucket", "Arn"]} in resources_denied
    assert {"Fn::Sub": "${MessageBucket.Arn}/*"} in resources_denied
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert len(allows) == 1
    allow = allows[0]
    assert allow["Principal"] == {"Service": "ses.amazonaws.com"}
    assert as_list(allow["Action"]) == ["s3:PutObject"]
    assert sub_string(allow["Resource"]) == "${MessageBucket.Arn}/${MessagePrefix}*"
    cond = allow["Condition"]
    assert cond["StringEquals"] == {"AWS:SourceAccount": {"Ref": "AWS::AccountId"}}
    src = sub_string(cond["ArnLike"]["AWS:SourceArn"])
    assert re.fullmatch(RULE_ARN, src), src  # only the gate's rule, in the set it is in


def test_tenants_table(resources):
    table = resources["TenantsTable"]
    # The operator's data: kept on the stack's delete and on a replacement, never deleted by CloudFormation.
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    p = table["Properties"]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "domain", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "domain", "AttributeType": "S"}]
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["DeletionProtectionEnabled"] == {"Ref": "DeletionProtection"}
    assert p["SSESpecification"]["SSEEnabled"] is True


# --------------------------------------------------------------------------- function
def test_gate_function_settings(tpl, resources):
    fn = gate(resources)
    timeout = fn_prop(tpl, fn, "Timeout")
    assert isinstance(timeout, int) and timeout < 30, "SES RequestResponse limit is 30 s"
    budget = tpl["Parameters"]["DecisionBudgetSeconds"]["Default"]
    assert float(budget) < timeout
    assert fn_prop(tpl, fn, "MemorySize") == 256  # from the benchmark: ~90 MB peak, DNS-wait dominated
    assert fn_prop(tpl, fn, "Tracing") == "Active"


def test_gate_environment(tpl, resources):
    params = tpl["Parameters"]
    env = gate(resources)["Properties"]["Environment"]["Variables"]
    unknown = set(env) - set(GATE_ENV)
    assert not unknown, f"unexpected env vars: {sorted(unknown)}"
    missing = set(GATE_ENV) - set(env)
    assert not missing, f"missing env vars: {sorted(missing)}"
    assert env["TENANTS_TABLE"] == TENANTS_NAME
    assert env["MESSAGE_BUCKET"] == {"Ref": "MessageBucket"}
    assert env["BOUNCE_QUEUE_URL"] == {"Ref": "BounceQueue"}  # Ref of a queue is its URL
    assert env["TRACE_TABLE"] == {"Ref": "TraceTable"}
    assert env["POWERTOOLS_SERVICE_NAME"] == "ipv6gate"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "IPv6Gate"
    assert env["LOG_LEVEL"] == {"Ref": "LogLevel"}
    for var, spec in GATE_ENV.items():
        if spec is None:
            continue
        want_param, default = spec
        value = env[var]
        refs = [value] if "Ref" in value else [v for v in value["Fn::If"][1:] if isinstance(v, dict) and "Ref" in v]
        assert refs, f"{var} is not taken from a parameter"
        param = refs[0]["Ref"]
        assert param in params, f"{var}: unknown parameter {param}"
        if want_param:
            assert param == want_param, var
        assert str(params[param].get("Default")) == default, f"{var}: default of {param}"
    assert set(params["PtrMode"]["AllowedValues"]) == {"exists", "fcrdns"}
    assert set(params["TemperrorAction"]["AllowedValues"]) == {"accept", "reject"}
    assert set(params["BounceMode"]["AllowedValues"]) == {"authenticated", "always", "never"}


def test_other_parameters(tpl):
    params = tpl["Parameters"]
    for name in ("Recipients", "RuleSetName", "DeletionProtection", "MessageRetentionDays", "ActivateRuleSet"):
        assert name in params, name
    assert str(params["MessageRetentionDays"]["Default"]) == "7"
    assert set(params["DeletionProtection"]["AllowedValues"]) == {"true", "false"}


# --------------------------------------------------------------------------- rule-set composition
def _condition(tpl: dict, name: str, values: dict[str, str]) -> bool:
    """Evaluate one of the template's Conditions for the given parameter values (defaults otherwise)."""

    def value(node):
        if isinstance(node, str):
            return node
        if "Ref" in node:
            ref = node["Ref"]
            if ref in values:
                return values[ref]
            default = tpl["Parameters"][ref].get("Default")
            assert default is not None, f"parameter {ref} has no default: pass it"
            return str(default)
        if "Fn::Join" in node:
            sep, items = node["Fn::Join"]
            return sep.join(value(items).split(",")) if isinstance(items, dict) else sep.join(map(value, items))
        if "Fn::Equals" in node:
            a, b = node["Fn::Equals"]
            return value(a) == value(b)
        if "Fn::Not" in node:
            return not value(node["Fn::Not"][0])
        if "Condition" in node:
            return _condition(tpl, node["Condition"], values)
        raise AssertionError(f"unhandled condition node {node}")

    return bool(value(tpl["Conditions"][name]))


def _created(tpl: dict, **values: str) -> dict[str, dict]:
    """The resources CloudFormation creates for these parameter values."""
    values = {"Recipients": "example.com", **values}
    resources = tpl["Resources"].items()
    return {k: v for k, v in resources if "Condition" not in v or _condition(tpl, v["Condition"], values)}


def test_composition_defaults_are_the_path_that_loses_no_mail(tpl):
    params = tpl["Parameters"]
    assert params["RuleSetMode"]["Default"] == "existing"
    assert set(params["RuleSetMode"]["AllowedValues"]) == {"existing", "own"}
    assert params["RuleSetName"]["Default"] == ""  # existing mode: the set active at create time
    assert params["ActivateRuleSet"]["Default"] == "false"
    assert set(params["ActivateRuleSet"]["AllowedValues"]) == {"true", "false"}
    assert params["SeedTenants"]["Default"] == "monitor"
    assert set(params["SeedTenants"]["AllowedValues"]) == {"monitor", "off"}
    assert "Default" not in params["Recipients"], "the operator names what the gate covers"
    # Where the mode is chosen, the own set says it delivers nothing.
    assert "delivers NOTHING" in params["RuleSetMode"]["Description"]


# SES's names (CreateReceiptRuleSet, ReceiptRule.Name): ASCII letters, digits, _ and -; a letter or digit
# first and last; under 64 characters. The custom resource checks the same for sets (SES_NAME). A rule's
# name may also hold "." (ReceiptRule.Name): a stack deployed with RuleName=ipv6gate.gate must update.
SES_NAMES_GOOD = ("a", "ops-rules", "a_b-1", "Z9", "x" * 63)
SES_NAMES_BAD = ("-x", "x-", "_x", "x_", "a b", "x" * 64, "é", "a/b", "a\nb", ".x", "x.")
DOTTED = ("a.b", "ipv6gate.gate")


@pytest.mark.parametrize("parameter", ["RuleSetName", "RuleName"])
def test_rule_set_and_rule_names_are_as_strict_as_ses(tpl, parameter):
    from ipv6gate.aws.custom_resources import SES_NAME

    pattern = tpl["Parameters"][parameter]["AllowedPattern"]
    assert tpl["Parameters"][parameter]["ConstraintDescription"].startswith(("empty, or 1-63", "1-63"))
    assert bool(re.fullmatch(pattern, "")) is (parameter == "RuleSetName"), "only the set may be empty"
    for good in SES_NAMES_GOOD:
        assert re.fullmatch(pattern, good) and SES_NAME.fullmatch(good), good
    for bad in SES_NAMES_BAD:
        assert not re.fullmatch(pattern, bad), bad
        assert not SES_NAME.fullmatch(bad), bad
    for dotted in DOTTED:  # a rule's name may hold periods, a set's may not
        assert bool(re.fullmatch(pattern, dotted)) is (parameter == "RuleName"), dotted
        assert not SES_NAME.fullmatch(dotted), dotted


def test_existing_mode_creates_no_rule_set_and_puts_the_rule_first(tpl):
    created = _created(tpl)  # defaults: RuleSetMode=existing
    assert not of_type(created, "AWS::SES::ReceiptRuleSet"), "existing mode must not create (or delete) a set"
    _, rule = only(created, "AWS::SES::ReceiptRule")
    assert "After" not in rule["Properties"], "no After: the gate's rule is the first of the set"
    assert rule["Properties"]["RuleSetName"] == {"Fn::GetAtt": ["RuleSetTarget", "RuleSetName"]}
    target = created["RuleSetTarget"]
    assert target["Type"] == "Custom::ReceiptRuleSetTarget"
    assert target["Properties"]["RuleSetName"] == {
        "Fn::If": ["UseOwnRuleSet", {"Ref": "ReceiptRuleSet"}, {"Ref": "RuleSetName"}]
    }
    assert "ActiveReceiptRuleSet" not in created, "activation is opt-in"
    assert _created(tpl, RuleSetName="ops")["RuleSetTarget"] == target


def test_own_mode_creates_its_set_and_can_activate_it(tpl):
    created = _created(tpl, RuleSetMode="own")
    name, ruleset = only(created, "AWS::SES::ReceiptRuleSet")
    assert name == "ReceiptRuleSet"
    assert ruleset["Properties"]["RuleSetName"] == {
        "Fn::If": ["HasRuleSetName", {"Ref": "RuleSetName"}, {"Ref": "AWS::StackName"}]
    }
    assert "ActiveReceiptRuleSet" not in created
    activated = _created(tpl, RuleSetMode="own", ActivateRuleSet="true")
    cr = activated["ActiveReceiptRuleSet"]
    assert cr["Type"] == "Custom::ActiveReceiptRuleSet"
    assert cr["Properties"]["RuleSetName"] == {"Fn::GetAtt": ["RuleSetTarget", "RuleSetName"]}
    # Deleted before the rule (and the own set): the previous set is active again before SES is asked
    # to delete a set, which it refuses for the active one.
    assert as_list(cr["DependsOn"]) == ["ReceiptRule", "ActivateRuleSetPolicy"]
    text = TEMPLATE.read_text(encoding="utf-8")
    assert "aws ses set-active-receipt-rule-set --rule-set-name" in text
    assert re.search(r"only one .*rule set.* active per account and region", text, re.I | re.S)


def test_tenants_are_seeded_before_the_rule_exists_and_outlive_the_stack(tpl, resources):
    seed = resources["TenantSeed"]
    assert seed["Type"] == "Custom::TenantSeed"
    assert "Condition" not in seed, "the rule depends on it in every mode"
    props = seed["Properties"]
    assert props["TableName"] == TENANTS_NAME
    assert props["Recipients"] == {"Ref": "Recipients"}
    assert props["Seed"] == {"Ref": "SeedTenants"}
    _, rule = only(resources, "AWS::SES::ReceiptRule")
    assert "TenantSeed" in as_list(rule["DependsOn"])
    assert resources["TenantsTable"]["DeletionPolicy"] == "Retain"


def test_every_custom_resource_is_served_by_the_setup_function(resources):
    custom = {k: v for k, v in resources.items() if v["Type"].startswith("Custom::")}
    assert {v["Type"] for v in custom.values()} == {
        "Custom::ReceiptRuleSetTarget",
        "Custom::TenantSeed",
        "Custom::ActiveReceiptRuleSet",
        "Custom::MessageBucketDrain",
    }
    for name, cr in custom.items():
        assert cr["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["StackSetupFunction", "Arn"]}, name
    fn = resources["StackSetupFunction"]["Properties"]
    assert fn["CodeUri"] == "functions/stack_setup/" and fn["Handler"] == "app.lambda_handler"
    assert {"Ref": "IPv6GateLayer"} in fn["Layers"]


def test_setup_function_permissions_least_privilege(resources):
    policies = as_list(resources["StackSetupFunction"]["Properties"]["Policies"])
    statements = [st for pol in policies for st in as_list(pol["Statement"])]
    assert all("Fn::If" not in st for st in statements)
    by_action = {a: st["Resource"] for st in statements for a in as_list(st["Action"])}
    assert by_action == {
        "ses:DescribeActiveReceiptRuleSet": "*",
        "ses:DescribeReceiptRuleSet": "*",
        "ses:ListIdentities": "*",
        "dynamodb:PutItem": TENANTS_ARN,
        # The drain: the stack's message bucket, by name, and nothing else.
        "s3:ListBucket": {"Fn::GetAtt": ["MessageBucket", "Arn"]},
        "s3:DeleteObject": {"Fn::Sub": "${MessageBucket.Arn}/*"},
    }
    # Changing which set is active is granted only to a stack that activates, by a policy of its own
    # on the function's role.
    policy = resources["ActivateRuleSetPolicy"]
    assert policy["Type"] == "AWS::IAM::Policy" and policy["Condition"] == "ActivateRuleSetCondition"
    assert policy["Properties"]["Roles"] == [{"Ref": "StackSetupFunctionRole"}]
    [granted] = as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    assert as_list(granted["Action"]) == ["ses:SetActiveReceiptRuleSet"] and granted["Resource"] == "*"


def _references(value) -> set[str]:
    """Logical ids a resource's properties name (Ref, GetAtt, ${X} and ${X.Attr} in Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                found |= _references(inner[1:] if isinstance(inner, list) else [])
            else:
                found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    return found


def _depends_on(resources: dict, name: str, other: str) -> bool:
    """Whether CloudFormation creates ``other`` before ``name`` and deletes it after (directly or not)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        res = resources.get(current)
        if res is None or current in seen:
            continue
        seen.add(current)
        direct = set(as_list(res.get("DependsOn", []))) | _references(res.get("Properties", {}))
        if other in direct:
            return True
        todo.extend(direct)
    return False


def test_an_existing_tenants_table_is_used_instead_of_a_new_one(tpl, resources):
    """ExistingTenantsTable=<name>: no table is created; the gate, the seed, the permissions and the
    output all name that table; empty (the default): the stack's own, retained one."""
    param = tpl["Parameters"]["ExistingTenantsTable"]
    assert param["Default"] == "" and param["Type"] == "String"
    for good in ("", "ipv6gate-TenantsTable-1A2B3C", "abc", "a.b_c-d"):
        assert re.fullmatch(param["AllowedPattern"], good), good
    for bad in ("ab", "a b", "x" * 256, "arn:aws:dynamodb:eu-west-1:1:table/t"):
        assert not re.fullmatch(param["AllowedPattern"], bad), bad
    assert "TenantsTable" in _created(tpl)
    assert "TenantsTable" not in _created(tpl, ExistingTenantsTable="kept-tenants")
    # Nothing else names the table directly: with no TenantsTable resource every reference is the If.
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.count("TenantsTable.Arn") == text.count("!If [CreateTenantsTable, !GetAtt TenantsTable.Arn,") == 2
    assert text.count("!Ref TenantsTable") == text.count("!If [CreateTenantsTable, !Ref TenantsTable,") == 3


def test_stack_delete_removes_the_rule_then_empties_then_deletes_the_bucket(resources):
    """``sam delete`` alone rolls back: the gate's rule goes first (SES stops writing), then the drain
    empties the bucket, then CloudFormation deletes the bucket; no window in which mail refills it."""
    drain = resources["MessageBucketDrain"]
    assert drain["Type"] == "Custom::MessageBucketDrain" and "Condition" not in drain
    assert drain["Properties"]["BucketName"] == {"Ref": "MessageBucket"}
    assert "MessageBucketDrain" in as_list(resources["ReceiptRule"]["DependsOn"])
    assert _depends_on(resources, "ReceiptRule", "MessageBucketDrain")
    assert _depends_on(resources, "MessageBucketDrain", "MessageBucket")
    # The function that drains is deleted after the drain, and so is its permission to delete objects.
    assert _depends_on(resources, "MessageBucketDrain", "StackSetupFunction")
    assert not _depends_on(resources, "MessageBucket", "MessageBucketDrain")


def test_activation_outlives_nothing_it_needs(resources):
    """Turning ActivateRuleSet off deletes ActiveReceiptRuleSet (whose delete restores the previously
    active set) in the update's cleanup. It must depend on the policy that grants SetActiveReceiptRuleSet,
    so CloudFormation deletes it first and the restore is still allowed; a conditional statement in the
    function's role would already be gone then."""
    depends = as_list(resources["ActiveReceiptRuleSet"]["DependsOn"])
    assert "ActivateRuleSetPolicy" in depends and "ReceiptRule" in depends
    assert resources["ActiveReceiptRuleSet"]["Condition"] == resources["ActivateRuleSetPolicy"]["Condition"]


def test_outputs(tpl):
    outputs = tpl["Outputs"]
    assert outputs["TenantsTableName"]["Value"] == TENANTS_NAME
    assert outputs["MessageBucketName"]["Value"] == {"Ref": "MessageBucket"}
    assert outputs["GateFunctionArn"]["Value"] == {"Fn::GetAtt": ["GateFunction", "Arn"]}
    assert outputs["ReceiptRuleSetName"]["Value"] == {"Fn::GetAtt": ["RuleSetTarget", "RuleSetName"]}
    assert outputs["ReceiptRuleName"]["Value"] == {"Ref": "RuleName"}


# --------------------------------------------------------------------------- bounce pipeline
BOUNCER_ENV_FIXED = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL"}
# What the bouncer needs to authenticate a sender the gate had not finished checking (evaluation/sender_proof.py).
BOUNCER_CHECK_ENV = {
    "DNS_SERVERS",
    "DNS_QUERY_TIMEOUT_SECONDS",
    "DECISION_BUDGET_SECONDS",
    "SPF_VOID_LOOKUP_LIMIT",
    "DKIM_MAX_SIGNATURES",
    "MESSAGE_BUCKET",
    "MESSAGE_PREFIX",
    "MESSAGE_MAX_BYTES",
}


def _statements_of(resources: dict, function: str) -> list[dict]:
    policies = as_list(resources[function]["Properties"].get("Policies", []))
    return [st for pol in policies for st in as_list(pol["Statement"])]


def _queue_arn(name: str) -> dict:
    return {"Fn::GetAtt": [name, "Arn"]}


def test_send_bounce_only_in_the_bouncer_role_and_scoped_to_the_sender_identity(tpl, resources):
    out = sam_transform()
    holders = {
        where.split(".", 1)[0]
        for where, st in iam_statements(out["Resources"])
        if any(str(a).lower() in ("ses:sendbounce", "ses:*", "*") for a in as_list(st.get("Action", [])))
    }
    assert holders == {"BouncerFunctionRole"}, holders
    [statement] = [st for st in _statements_of(resources, "BouncerFunction") if "ses:SendBounce" in st["Action"]]
    assert as_list(statement["Action"]) == ["ses:SendBounce"]
    condition, when_arn, when_derived = statement["Resource"]["Fn::If"]
    assert condition == "HasBounceSenderArn"
    assert when_arn == [{"Ref": "BounceSenderArn"}]
    identity = r"arn:(\$\{AWS::Partition\}|aws):ses:\$\{AWS::Region\}:\$\{AWS::AccountId\}:identity/"
    address, domain = when_derived
    assert re.fullmatch(identity + r"\$\{BounceSender\}", sub_string(address))
    assert re.fullmatch(identity + r"\$\{Domain\}", sub_string(domain))
    assert domain["Fn::Sub"][1] == {"Domain": {"Fn::Select": [1, {"Fn::Split": ["@", {"Ref": "BounceSender"}]}]}}
    assert tpl["Conditions"]["HasBounceSenderArn"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BounceSenderArn"}, ""]}]}
    sender = tpl["Parameters"]["BounceSender"]
    assert "Default" not in sender, "the bounce sender must be chosen (and verified in SES) by the deployer"
    for good in ("bounces@example.com", "mailer-daemon@mx.example.co.uk", "a.b+c@x-y.example"):
        assert re.fullmatch(sender["AllowedPattern"], good), good
    for bad in ("example.com", "@example.com", "a@b", "a b@example.com", "a@example.com, c@example.com"):
        assert not re.fullmatch(sender["AllowedPattern"], bad), bad


def test_bouncer_permissions_least_privilege(resources):
    by_action: dict[str, object] = {}
    for st in _statements_of(resources, "BouncerFunction"):
        assert st["Effect"] == "Allow"
        for action in as_list(st["Action"]):
            by_action[action] = st["Resource"]
    idempotency = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    consume = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}
    assert set(by_action) == {"ses:SendBounce", "s3:GetObject"} | idempotency | consume
    assert by_action["s3:GetObject"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${MessageBucket}/${MessagePrefix}*"}
    for action in idempotency:
        assert by_action[action] == {"Fn::GetAtt": ["IdempotencyTable", "Arn"]}, action
    for action in consume:
        assert by_action[action] == _queue_arn("BounceQueue"), action


def test_bouncer_role_after_sam_transform_has_no_sqs_wildcard_policy():
    """SAM's SQS event would attach AWSLambdaSQSQueueExecutionRole (Resource "*"): the mapping is explicit."""
    out = sam_transform()
    role = out["Resources"]["BouncerFunctionRole"]["Properties"]
    managed = [sub_string(a) if isinstance(a, dict) else a for a in role.get("ManagedPolicyArns", [])]
    assert not [a for a in managed if "SQS" in a], managed
    mappings = of_type(out["Resources"], "AWS::Lambda::EventSourceMapping")
    assert set(mappings) == {"BouncerEventSourceMapping"}


def test_queues_encrypted_and_tls_only(resources):
    queues = of_type(resources, "AWS::SQS::Queue")
    assert set(queues) == {"BounceQueue", "BounceDeadLetterQueue"}
    policies = of_type(resources, "AWS::SQS::QueuePolicy")
    for name, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name
        denies = [
            st
            for pol in policies.values()
            if {"Ref": name} in pol["Properties"]["Queues"]
            for st in as_list(pol["Properties"]["PolicyDocument"]["Statement"])
            if st["Effect"] == "Deny"
            and str(st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower() == "false"
        ]
        assert len(denies) == 1, f"{name}: TLS-only Deny statement missing"
        assert denies[0]["Principal"] in ("*", {"AWS": "*"})
        assert "sqs:*" in as_list(denies[0]["Action"])
        assert _queue_arn(name) in as_list(denies[0]["Resource"])


def test_bounce_queue_redrive_retention_and_visibility(tpl, resources):
    queue = resources["BounceQueue"]["Properties"]
    dlq = resources["BounceDeadLetterQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": _queue_arn("BounceDeadLetterQueue"), "maxReceiveCount": 5}
    timeout = fn_prop(tpl, resources["BouncerFunction"], "Timeout")
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["MessageRetentionPeriod"] > 24 * 3600, "requests must outlive SendBounce's 24 h window"
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]


def test_bouncer_function(tpl, resources):
    from ipv6gate.settings import BOUNCER_ENV_NAMES as ENV_NAMES

    fn = resources["BouncerFunction"]
    props = fn["Properties"]
    assert props["CodeUri"] == "functions/bouncer/" and props["Handler"] == "app.lambda_handler"
    assert props["ReservedConcurrentExecutions"] == 1, "SendBounce allows 1 call/s per account"
    assert {"Ref": "IPv6GateLayer"} in props["Layers"]
    assert fn_prop(tpl, fn, "Tracing") == "Active"
    assert "Events" not in props, "an SQS event would attach a Resource '*' managed policy"
    env = props["Environment"]["Variables"]
    assert set(env) == set(ENV_NAMES) | BOUNCER_ENV_FIXED | BOUNCER_CHECK_ENV
    for name in BOUNCER_CHECK_ENV:  # the same values the gate gets
        assert env[name] == resources["GateFunction"]["Properties"]["Environment"]["Variables"][name], name
    assert env["BOUNCE_SENDER"] == {"Ref": "BounceSender"}
    assert env["BOUNCE_SENDER_ARN"] == {"Ref": "BounceSenderArn"}
    assert env["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert env["BOUNCE_MAX_AGE_HOURS"] == "24" and env["BOUNCE_RATE_PER_SECOND"] == "1"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "IPv6Gate"


def test_bouncer_reports_batch_item_failures(resources):
    _, mapping = only(resources, "AWS::Lambda::EventSourceMapping")
    p = mapping["Properties"]
    assert p["FunctionName"] == {"Ref": "BouncerFunction"}
    assert p["EventSourceArn"] == _queue_arn("BounceQueue")
    assert p["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert p["BatchSize"] == 10
    assert 0 <= p["MaximumBatchingWindowInSeconds"] <= 5


def _trigger_limits(resources: dict) -> dict[str, list[tuple[str, int]]]:
    """Function -> [(trigger, the largest Timeout that trigger tolerates)]."""
    limits: dict[str, list[tuple[str, int]]] = {}
    for name, res in resources.items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::SES::ReceiptRule":
            for action in props["Rule"]["Actions"]:
                lam = action.get("LambdaAction")
                if lam and lam.get("InvocationType") == "RequestResponse":
                    fn = lam["FunctionArn"]["Fn::GetAtt"][0]
                    limits.setdefault(fn, []).append((name, 29))  # SES waits 30 s for a sync action
        elif res["Type"] == "AWS::Lambda::EventSourceMapping":
            queue = resources[props["EventSourceArn"]["Fn::GetAtt"][0]]["Properties"]
            # Lambda wants the visibility timeout >= the function timeout; AWS advises 6x.
            limits.setdefault(props["FunctionName"]["Ref"], []).append((name, queue["VisibilityTimeout"] // 6))
        elif res["Type"].startswith("Custom::"):
            fn = props["ServiceToken"]["Fn::GetAtt"][0]
            limits.setdefault(fn, []).append((name, 900))  # Lambda's own maximum; CloudFormation waits 1 h
    return limits


def test_every_function_has_a_timeout_below_its_triggers_limits(tpl, resources):
    limits = _trigger_limits(resources)
    functions = of_type(resources, "AWS::Serverless::Function")
    assert set(functions) == set(limits), f"functions without a known trigger: {set(functions) ^ set(limits)}"
    for name, fn in functions.items():
        timeout = fn_prop(tpl, fn, "Timeout")
        assert isinstance(timeout, int), f"{name}: Timeout must be set"
        for trigger, limit in limits[name]:
            assert timeout <= limit, f"{name}: Timeout {timeout} s exceeds {trigger}'s limit {limit} s"


def _alarm_actions_optional(alarm: dict) -> None:
    for key in ("AlarmActions", "OKActions"):
        assert alarm[key] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}, key


def test_dead_letter_queue_alarm(tpl, resources):
    alarms = of_type(resources, "AWS::CloudWatch::Alarm")
    dlq = [
        a["Properties"]
        for a in alarms.values()
        if a["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and a["Properties"]["Dimensions"]
        == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["BounceDeadLetterQueue", "QueueName"]}}]
    ]
    assert len(dlq) == 1, "no alarm on the dead-letter queue"
    [alarm] = dlq
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    assert alarm["TreatMissingData"] == "notBreaching"
    _alarm_actions_optional(alarm)
    assert tpl["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert tpl["Conditions"]["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}


def test_bouncer_errors_alarm(resources):
    alarms = [
        a["Properties"]
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == "AWS/Lambda" and a["Properties"]["MetricName"] == "Errors"
    ]
    assert len(alarms) == 1
    [alarm] = alarms
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "BouncerFunction"}}]
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    _alarm_actions_optional(alarm)


def test_idempotency_table(resources):
    p = resources["IdempotencyTable"]["Properties"]
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert p["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["SSESpecification"]["SSEEnabled"] is True


def test_trace_table(resources):
    table = resources["TraceTable"]
    p = table["Properties"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert p["BillingMode"] == "PAY_PER_REQUEST"
    assert p["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert sorted((a["AttributeName"], a["AttributeType"]) for a in p["AttributeDefinitions"]) == [
        ("at", "S"),
        ("lookup", "S"),
        ("pk", "S"),
        ("sk", "S"),
    ]
    [index] = p["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "lookup"
    assert index["KeySchema"] == [
        {"AttributeName": "lookup", "KeyType": "HASH"},
        {"AttributeName": "at", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert p["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert p["DeletionProtectionEnabled"] == {"Ref": "DeletionProtection"}
    assert p["SSESpecification"]["SSEEnabled"] is True


def test_bounce_outputs_and_parameters(tpl):
    outputs = tpl["Outputs"]
    assert outputs["BounceQueueUrl"]["Value"] == {"Ref": "BounceQueue"}
    assert outputs["BounceDeadLetterQueueUrl"]["Value"] == {"Ref": "BounceDeadLetterQueue"}
    assert outputs["TraceTableName"]["Value"] == {"Ref": "TraceTable"}
    params = tpl["Parameters"]
    for name in ("BounceSender", "BounceSenderArn", "BounceMode", "TraceTtlDays", "AlarmTopicArn"):
        assert name in params, name


def test_every_function_logs_to_a_group_with_the_retention_parameter(resources):
    """Lambda's own /aws/lambda/<name> group never expires: each function names a group of the stack,
    kept LogRetentionDays (the deploy rehearsal's emulator ignores retention; this is its check)."""
    functions = {n: r for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert functions
    for name, res in functions.items():
        group = res["Properties"]["LoggingConfig"]["LogGroup"]
        assert isinstance(group, dict) and set(group) == {"Ref"}, name
        target = resources[group["Ref"]]
        assert target["Type"] == "AWS::Logs::LogGroup", name
        assert target["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name


def test_numeric_parameters_admit_only_what_the_settings_accept(tpl, resources):
    """A value the template accepts but the settings refuse deploys fine and then fails every cold start:
    each parameter that feeds a numeric setting is a Number whose MinValue and MaxValue both parse."""
    from dataclasses import fields

    from ipv6gate.settings import Settings, SettingsError

    numeric = {f.metadata["env"] for f in fields(Settings) if "env" in f.metadata and type(f.default) in (int, float)}
    env = gate(resources)["Properties"]["Environment"]["Variables"]
    fed = {var: ref["Ref"] for var, ref in env.items() if isinstance(ref, dict) and ref.get("Ref") in tpl["Parameters"]}
    checked = set()
    for var, name in fed.items():
        if var not in numeric:
            continue
        spec = tpl["Parameters"][name]
        assert spec["Type"] == "Number" and "MinValue" in spec and "MaxValue" in spec, name
        for value in (spec["MinValue"], spec["MaxValue"], spec["Default"]):
            # The smallest query timeout, so the budget's minimum is not refused for being below it.
            base = {"AWS_REGION": "eu-west-1", "DNS_QUERY_TIMEOUT_SECONDS": "0.05"}
            try:
                Settings.from_env({**base, var: str(value)})
            except SettingsError as exc:
                pytest.fail(f"{name}={value} is accepted by the template but refused at cold start: {exc}")
        checked.add(name)
    assert {"DnsQueryLimit", "DkimMaxSignatures", "MessageMaxBytes", "DnsQueryTimeoutSeconds"} <= checked
