"""template.yaml as a user meets it: `sam validate --lint`, `sam build` without Docker, what gets deployed, IAM.

`sam build` runs once per module (a module fixture) into a temporary directory; the content checks evaluate the
template for concrete parameter values with testkit/cfn_template.py, and the IAM checks look at the
CloudFormation that SAM generates (roles included), not only at what we wrote.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testkit.cfn_template import (
    ACCOUNT,
    REGION,
    REPO,
    STACK_NAME,
    ParameterRejected,
    Stack,
    load_template,
    sam_transform,
)
from testkit.repo import load_event as load_event_sample
from testkit.tools import require_tool

# One worker runs this module: its `sam build` (module fixture) then happens once per run, not once per worker.
pytestmark = pytest.mark.xdist_group("sam-build")
TEMPLATE = load_template()
FUNCTIONS = {
    "DispatchFunction": "dispatch",
    "RolloutStepFunction": "rollout_step",
    "PreflightFunction": "preflight",
    "VerifyFunction": "verify",
}
SUBSTITUTIONS = {"RolloutStepFunctionArn", "PreflightFunctionArn", "VerifyFunctionArn", "LeaseTableName"}
TWO_CLUSTERS = {"ClusterNames": "prod,staging"}
SAM_ENV = {**os.environ, "SAM_CLI_TELEMETRY": "0", "SAM_CLI_DISABLE_VERSION_CHECK": "1"}


def sam(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    require_tool("sam")
    return subprocess.run(
        ["sam", *args], cwd=cwd, env=SAM_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )


# ------------------------------------------------------------------------------------------------ lint and build
def test_sam_validate_lint_is_clean() -> None:
    done = sam("validate", "--lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout + done.stderr


@dataclass(frozen=True)
class Build:
    root: Path
    seconds: float
    output: str

    @property
    def layer(self) -> Path:
        return self.root / "EksProxyLayer" / "python"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """One `sam build` for the module, as a user runs it: no Docker, no parameters (clusters come at deploy)."""
    out = tmp_path_factory.mktemp("sam-build")
    started = time.monotonic()
    done = sam("build", "--build-dir", str(out / "build"), "--cache-dir", str(out / "cache"))
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return Build(out / "build", seconds, done.stdout + done.stderr)


@pytest.mark.slow
def test_build_succeeds_without_docker(built: Build) -> None:
    assert "Build Succeeded" in built.output
    assert "--use-container" not in built.output and "docker" not in built.output.lower()
    assert (built.root / "template.yaml").is_file()
    for logical_id, directory in FUNCTIONS.items():
        code = built.root / logical_id
        assert (code / "app.py").read_bytes() == (REPO / "functions" / directory / "app.py").read_bytes()
        # Handlers ship alone: everything else comes from the layer (boto3 from the runtime).
        vendored = [p.name for p in code.iterdir() if p.is_dir() and p.name != "__pycache__"]
        assert vendored == [], f"{logical_id} vendors {vendored}"


def test_functions_have_no_requirements_txt() -> None:
    # A function with requirements.txt makes `sam build` demand exactly python3.13 on PATH (or Docker).
    assert list((REPO / "functions").glob("*/requirements.txt")) == []


@pytest.mark.slow
def test_layer_ships_the_package_and_its_pure_python_dependencies(built: Build) -> None:
    layer = built.layer
    for package in ("eks_proxy", "aws_lambda_powertools", "tomlkit"):
        assert (layer / package).is_dir(), package
    # No pydantic: the contracts are plain dataclasses. Pure Python: nothing ties the layer to one CPU architecture.
    for absent in ("pydantic", "pydantic_core"):
        assert not (layer / absent).exists(), absent
    assert not [p.name for p in layer.rglob("*.so")]
    # The runtime provides boto3/botocore and botocore's jmespath; test suites are dead weight.
    for absent in ("boto3", "botocore", "s3transfer", "jmespath", "bin"):
        assert not (layer / absent).exists(), absent
    assert not [p for p in layer.rglob("tests") if p.is_dir()]


@pytest.mark.slow
def test_layer_keeps_only_the_powertools_modules_our_code_reaches(built: Build) -> None:
    powertools = built.layer / "aws_lambda_powertools"
    kept = {p.relative_to(powertools).with_suffix("").as_posix() for p in powertools.rglob("*.py*")}
    kept = {name.removesuffix(".cpython-313").replace("__pycache__/", "") for name in kept}
    for needed in ("logging/logger", "logging/correlation_paths", "metrics/metrics", "utilities/typing/__init__"):
        assert needed in kept, needed
    for dropped in ("event_handler", "utilities/parser", "utilities/idempotency", "utilities/batch"):
        assert not (powertools / dropped).exists(), dropped
    assert "Powertools trimmed to the modules the handlers can reach" in built.output


@pytest.mark.slow
def test_layer_has_every_module_of_the_package(built: Build) -> None:
    """Every module, as its source or (when the build had a python3.13) as its bytecode, and every data file."""
    source = REPO / "layers" / "eks_proxy" / "eks_proxy"
    wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    shipped = {
        p.relative_to(built.layer / "eks_proxy").with_suffix(".py" if p.suffix == ".pyc" else p.suffix)
        for p in (built.layer / "eks_proxy").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert wanted == shipped


def _python313() -> str | None:
    candidates = [
        shutil.which("python3.13"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13"))),
    ]
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def _hash_flags(pyc: Path) -> int:
    """The PEP 552 flags of a .pyc: 0 timestamp-based, 1 unchecked hash, 3 checked hash."""
    return int.from_bytes(pyc.read_bytes()[4:8], "little")


@pytest.mark.slow
def test_layer_ships_bytecode_when_the_build_has_python_313(built: Build) -> None:
    """/opt is read-only on Lambda: without shipped bytecode every cold start compiles the layer again."""
    layer = built.layer
    pycs = list(layer.rglob("*.pyc"))
    if _python313() is None:
        assert pycs == []
        assert "no python3.13 here: the layer ships sources only" in built.output
        return
    assert "bytecode: compiling with" in built.output
    assert pycs and {_hash_flags(p) for p in pycs} == {1}  # unchecked hash: never compared with a source
    # Bytecode only, in the legacy layout (x.pyc where x.py was): no sources, no __pycache__ folders.
    assert not list(layer.rglob("*.py")) and not list(layer.rglob("__pycache__"))
    for module in ("eks_proxy/__init__", "eks_proxy/engine/contracts", "aws_lambda_powertools/__init__", "tomlkit/api"):
        assert (layer / f"{module}.pyc").is_file(), module


@pytest.mark.slow
def test_layer_builds_without_python_313_and_says_so(tmp_path: Path) -> None:
    """The Makefile as `sam build` runs it, with no python3.13 to compile with: sources only, and a line saying so."""
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO / "layers" / "eks_proxy"), "build-EksProxyLayer", f"ARTIFACTS_DIR={tmp_path}"],
        env={**os.environ, "PYTHON313": ""},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "no python3.13 here: the layer ships sources only" in done.stdout
    layer = tmp_path / "python"
    assert (layer / "eks_proxy" / "__init__.py").is_file() and (layer / "tomlkit" / "__init__.py").is_file()
    assert not list(layer.rglob("*.pyc"))


RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def _runtime_stand_in(root: Path) -> Path:
    """The Lambda runtime's /var/runtime: boto3 and its dependencies only (pure Python, taken from this venv)."""
    import importlib.util

    runtime = root / "runtime"
    runtime.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    return runtime


# One real-shaped event per handler that stops on our own contract check, before any AWS call: import, Logger's
# context injection (JMESPath correlation ids), Metrics' flush and the error path all run from the layer alone.
_INVOKE = """
import importlib.util, json, sys
sys.path[:0] = [{function!r}, {layer!r}, {runtime!r}]
spec = importlib.util.spec_from_file_location("app", {function!r} + "/app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "f", 128, "r"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:f"
    def get_remaining_time_in_millis(self):
        return 60000

try:
    result = app.lambda_handler(json.loads({event!r}), Context())
except Exception as error:
    result = type(error).__name__
foreign = sorted(
    name for name, module in sys.modules.items()
    if getattr(module, "__file__", None)
    and not module.__file__.startswith(({layer!r}, {runtime!r}, {function!r}, sys.base_prefix))
)
print(json.dumps({{"result": result, "foreign": foreign}}, default=str))
"""
_EVENTS = {
    "dispatch": {**load_event_sample("ssm-parameter-update"), "source": "aws.s3"},
    "rollout_step": {"action": "no-such-action"},
    "preflight": {"parameter": {"name": "/eks proxy"}},
    "verify": {"cluster": "prod", "nodegroup": "ng a"},
}
_OUTCOMES = {
    "dispatch": "ignored",
    "rollout_step": "InvalidRolloutInput",
    "preflight": "ValidationError",
    "verify": "ValidationError",
}


@pytest.mark.slow
@pytest.mark.parametrize("function", sorted(FUNCTIONS.values()))
def test_every_handler_runs_from_the_built_layer_on_python_313(built: Build, function: str, tmp_path: Path) -> None:
    """The Lambda runtime's view: the function, the layer, the runtime's boto3, read-only (no bytecode written).

    With python3.13 (the runtime's version, the only one that reads the shipped bytecode); without one the build
    ships sources only, which this interpreter runs as well: the trim is checked either way.
    """
    python = _python313()
    if python is None:
        assert not list(built.layer.rglob("*.pyc")), "bytecode in the layer, but no python3.13 to run it"
        python = sys.executable
    runtime = _runtime_stand_in(tmp_path)
    code_dir = built.root / next(k for k, v in FUNCTIONS.items() if v == function)
    before = sorted(p for p in built.root.rglob("*") if p.is_file())
    script = _INVOKE.format(
        function=str(code_dir), layer=str(built.layer), runtime=str(runtime), event=json.dumps(_EVENTS[function])
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "POWERTOOLS_SERVICE_NAME": "eks-proxy",
        "CLUSTER_NAMES": "prod",
        "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:eks-proxy",
        "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:eks-proxy-rollout",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    done = subprocess.run(
        [python, "-I", "-B", "-c", script], env=env, capture_output=True, text=True, check=False, timeout=120
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    result = report["result"]
    assert (result.get("status") if isinstance(result, dict) else result) == _OUTCOMES[function], done.stdout[-2000:]
    assert report["foreign"] == []  # nothing came from outside the layer, the runtime and the standard library
    assert sorted(p for p in built.root.rglob("*") if p.is_file()) == before  # no bytecode cache written


def test_layer_build_matches_the_function_architecture() -> None:
    globals_ = TEMPLATE["Globals"]["Function"]
    layer = TEMPLATE["Resources"]["EksProxyLayer"]
    makefile = (REPO / "layers" / "eks_proxy" / "Makefile").read_text()
    assert globals_["Runtime"] == "python3.13" and layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    # Graviton by default; the layer is pure Python (test above), so it serves both architectures.
    assert globals_["Architectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64", "x86_64"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert re.search(r"^PLATFORM \?= manylinux2014_aarch64$", makefile, re.M)
    assert re.search(r"^PYTHON_VERSION \?= 3\.13$", makefile, re.M)
    assert "build-EksProxyLayer:" in makefile and "--only-binary=:all:" in makefile


# ------------------------------------------------------------------------------------------- the engine contract
def contract_env_vars() -> set[str]:
    """Every variable named in docs/ARCHITECTURE.md's "Environment variables" table (not the optional ones)."""
    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    table = doc.split("Environment variables", 1)[1].split("State machine", 1)[0].split("Optional variables", 1)[0]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def function_env(logical_id: str) -> dict[str, Any]:
    env = dict(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    own = TEMPLATE["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    env.update(own)
    return env


def test_every_contract_variable_is_set() -> None:
    names = contract_env_vars()
    assert len(names) >= 17, names
    assert names <= set(function_env("DispatchFunction"))
    for logical_id in FUNCTIONS:
        # Only dispatch starts rollouts and filters CloudTrail; the rest get the shared settings.
        assert names - {"STATE_MACHINE_ARN", "OWN_ROLE_ARNS"} <= set(function_env(logical_id)), logical_id


def test_dispatch_knows_the_state_machine_and_the_writing_role() -> None:
    env = function_env("DispatchFunction")
    assert env["STATE_MACHINE_ARN"] == {"Ref": "RolloutStateMachine"}
    assert env["OWN_ROLE_ARNS"] == {"Fn::GetAtt": ["RolloutStepFunctionRole", "Arn"]}
    stack = Stack(TEMPLATE, TWO_CLUSTERS)
    assert stack.resolve(env["CLUSTER_NAMES"]) == "prod,staging"


@pytest.mark.parametrize(
    "parameters",
    [
        {"ClusterNames": "prod, staging"},  # a space would end up in rule patterns and IAM ARNs
        {"ClusterNames": ""},
        {"ClusterNames": "prod,"},
        {"ClusterNames": "prod", "ProxyParameterName": "eks-proxy/config"},  # the SSM event carries the slash
        {"ClusterNames": "prod", "ProxyParameterName": "/eks-proxy/config value"},
        {"ClusterNames": "prod", "RegistryProbe": "registry-1.docker.io"},
        {"ClusterNames": "prod", "MaxConcurrency": "0"},
        {"ClusterNames": "prod", "AlarmEmail": "not-an-address"},
        {"ClusterNames": "prod", "LogRetentionDays": "31"},
        {"ClusterNames": "prod", "ProxyParameterKmsKeyArn": "alias/aws/ssm"},
    ],
)
def test_bad_parameters_are_refused_before_anything_is_created(parameters: dict[str, str]) -> None:
    with pytest.raises(ParameterRejected):
        Stack(TEMPLATE, parameters)


def test_state_machine_substitutions_cover_the_definition() -> None:
    machine = TEMPLATE["Resources"]["RolloutStateMachine"]["Properties"]
    assert machine["Type"] == "STANDARD"
    assert machine["DefinitionUri"] == "statemachine/rollout.asl.json"
    definition = (REPO / machine["DefinitionUri"]).read_text()
    json.loads(definition)
    used = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition))
    assert set(machine["DefinitionSubstitutions"]) == SUBSTITUTIONS
    assert used and used <= SUBSTITUTIONS, used - SUBSTITUTIONS
    assert machine["Logging"]["Level"] in {"ALL", "ERROR"}


def test_every_function_logs_json_to_a_log_group_with_retention() -> None:
    resources = TEMPLATE["Resources"]
    groups = []
    for logical_id in FUNCTIONS:
        logging = resources[logical_id]["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON"
        groups.append(logging["LogGroup"]["Ref"])
    destinations = resources["RolloutStateMachine"]["Properties"]["Logging"]["Destinations"]
    groups.append(destinations[0]["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0])
    assert len(set(groups)) == len(groups) == 5
    for group in groups:
        assert resources[group]["Type"] == "AWS::Logs::LogGroup"
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert TEMPLATE["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_alarms_notify_the_topic() -> None:
    stack = Stack(TEMPLATE, TWO_CLUSTERS)
    alarms = {k: r["Properties"] for k, r in stack.resources().items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    text = json.dumps(alarms)
    for metric in ("RolloutFailed", "ParameterDeleted", "ExecutionsFailed"):
        assert metric in text, metric
    assert "FROM EksProxy" in text  # the namespace POWERTOOLS_METRICS_NAMESPACE sets
    assert TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "EksProxy"
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    topic = stack.resources()["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}


def test_alarm_email_subscription_only_when_set() -> None:
    assert "AlarmEmailSubscription" not in Stack(TEMPLATE, TWO_CLUSTERS).resources()
    with_mail = Stack(TEMPLATE, {**TWO_CLUSTERS, "AlarmEmail": "platform@example.com"})
    subscription = with_mail.resolve(with_mail.resources()["AlarmEmailSubscription"]["Properties"])
    assert subscription == {"TopicArn": "ref:AlarmTopic", "Protocol": "email", "Endpoint": "platform@example.com"}


def test_saved_queries() -> None:
    queries = {
        r["Properties"]["Name"] for r in TEMPLATE["Resources"].values() if r["Type"] == "AWS::Logs::QueryDefinition"
    }
    assert queries == {
        "eks-proxy/what did the last rollout do",
        "eks-proxy/node groups skipped and why",
        "eks-proxy/how each node group ended",
        "eks-proxy/drift that persists",
        "eks-proxy/failures",
    }


def test_outputs() -> None:
    outputs = TEMPLATE["Outputs"]
    assert {"RolloutStateMachineArn", "AlarmTopicArn", "DispatchFunctionName", "LogsInsightsQueriesUrl"} <= set(outputs)
    url = Stack(TEMPLATE, TWO_CLUSTERS).resolve(outputs["LogsInsightsQueriesUrl"]["Value"])
    assert url == f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logsV2:logs-insights"


# --------------------------------------------------------------------------------------- VPC and access entries
@pytest.mark.parametrize("logical_id", ["PreflightFunction", "VerifyFunction"])
def test_vpc_config_only_when_subnets_are_given(logical_id: str) -> None:
    role = f"{logical_id}Role"
    outside = Stack(TEMPLATE, TWO_CLUSTERS)
    props = outside.resolve(TEMPLATE["Resources"][logical_id]["Properties"])
    assert "VpcConfig" not in props
    assert not [
        a for a in outside.resolve(TEMPLATE["Resources"][role]["Properties"]["ManagedPolicyArns"]) if "VPC" in a
    ]
    inside = Stack(TEMPLATE, {**TWO_CLUSTERS, "SubnetIds": "subnet-1,subnet-2", "SecurityGroupIds": "sg-1"})
    props = inside.resolve(TEMPLATE["Resources"][logical_id]["Properties"])
    assert props["VpcConfig"] == {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}
    assert any(
        a.endswith("/AWSLambdaVPCAccessExecutionRole")
        for a in inside.resolve(TEMPLATE["Resources"][role]["Properties"]["ManagedPolicyArns"])
    )


def access_entries(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    stack = Stack(TEMPLATE, parameters)
    return {
        k: stack.resolve(r["Properties"]) for k, r in stack.resources().items() if r["Type"] == "AWS::EKS::AccessEntry"
    }


def test_one_namespace_scoped_access_entry_per_cluster() -> None:
    entries = access_entries(TWO_CLUSTERS)
    assert sorted(e["ClusterName"] for e in entries.values()) == ["prod", "staging"]
    for entry in entries.values():
        assert entry["PrincipalArn"] == f"arn:aws:iam::{ACCOUNT}:role/eks-proxy-VerifyFunctionRole-EXAMPLE1234"
        assert entry["Type"] == "STANDARD"
        # A Kubernetes group bound by a namespaced Role (eks-proxy verify-access), no access policy: the narrowest
        # policy that can create pods (AmazonEKSEditPolicy) grants far more than verification needs.
        assert entry["KubernetesGroups"] == ["eks-proxy:verify"]
        assert "AccessPolicies" not in entry


def test_access_entries_can_be_turned_off() -> None:
    assert access_entries({**TWO_CLUSTERS, "EnableAccessEntries": "false"}) == {}


def test_ten_clusters_get_entries_and_an_eleventh_fails_the_deployment() -> None:
    ten = ",".join(f"c{i}" for i in range(10))
    assert sorted(e["ClusterName"] for e in access_entries({"ClusterNames": ten}).values()) == sorted(ten.split(","))
    assert "AtMostTenClustersWithAccessEntries" not in Stack(TEMPLATE, {"ClusterNames": ten}).resources()
    eleven = Stack(TEMPLATE, {"ClusterNames": ten + ",c10"}).resources()
    assert "AtMostTenClustersWithAccessEntries" in eleven
    off = Stack(TEMPLATE, {"ClusterNames": ten + ",c10", "EnableAccessEntries": "false"}).resources()
    assert "AtMostTenClustersWithAccessEntries" not in off


def test_trail_only_when_asked() -> None:
    kinds = {"AWS::CloudTrail::Trail", "AWS::S3::Bucket", "AWS::S3::BucketPolicy"}
    assert not [r for r in Stack(TEMPLATE, TWO_CLUSTERS).resources().values() if r["Type"] in kinds]
    stack = Stack(TEMPLATE, {**TWO_CLUSTERS, "CreateTrail": "true"})
    created = {r["Type"]: stack.resolve(r["Properties"]) for r in stack.resources().values() if r["Type"] in kinds}
    assert set(created) == kinds
    trail = created["AWS::CloudTrail::Trail"]
    assert trail["IsLogging"] is True
    assert trail["EventSelectors"] == [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]
    statements = created["AWS::S3::BucketPolicy"]["PolicyDocument"]["Statement"]
    trail_arn = f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/{trail['TrailName']}"
    for statement in statements:
        if statement["Effect"] == "Allow":
            assert statement["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn


# ------------------------------------------------------------------------------------------------------------ IAM
# Actions that support no resource-level permissions, with why we need them. Everything else that writes must name
# its resources.
STAR_WRITES_ALLOWED = {
    # Step Functions delivers execution logs through CloudWatch Logs vended log delivery.
    "logs:CreateLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:PutResourcePolicy",
}
READ = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|BatchGet)[A-Za-z]*$")
AWS_BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
AWS_VPC = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
IAM_CASES = {
    "defaults": TWO_CLUSTERS,
    "everything-on": {
        **TWO_CLUSTERS,
        "SubnetIds": "subnet-1",
        "SecurityGroupIds": "sg-1",
        "ProxyParameterKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "RequireLaunchTemplateTag": "true",
        "CreateTrail": "true",
        "AlarmEmail": "platform@example.com",
    },
}


@dataclass(frozen=True)
class Grant:
    role: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: dict[str, Any] | None


def grants(case: str) -> tuple[list[Grant], dict[str, list[str]]]:
    """Every Allow statement of every role SAM generates, resolved; and each role's managed policies."""
    parameters = IAM_CASES[case]
    transformed = sam_transform(TEMPLATE, {"ClusterNames": parameters["ClusterNames"]})
    stack = Stack(transformed, parameters)
    found: list[Grant] = []
    managed: dict[str, list[str]] = {}
    for logical_id, resource in stack.resources().items():
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group"}:
            raise AssertionError(f"unexpected identity resource {logical_id}: extend this test")
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = stack.resolve(resource["Properties"])
        managed[logical_id] = props.get("ManagedPolicyArns", [])
        for policy in props.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                assert statement["Effect"] == "Allow", statement
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                found.append(Grant(logical_id, tuple(actions), tuple(resources), statement.get("Condition")))
    return found, managed


@pytest.fixture(scope="module", params=sorted(IAM_CASES))
def iam(request: pytest.FixtureRequest) -> tuple[str, list[Grant], dict[str, list[str]]]:
    require_tool("sam")
    found, managed = grants(request.param)
    return request.param, found, managed


def test_no_write_action_on_every_resource(iam: tuple[str, list[Grant], dict[str, list[str]]]) -> None:
    _, found, _ = iam
    offenders = [
        (g.role, action)
        for g in found
        if "*" in g.resources
        for action in g.actions
        if not READ.match(action) and action not in STAR_WRITES_ALLOWED
    ]
    assert offenders == []
    assert not [g for g in found for a in g.actions if a == "*" or a.endswith(":*")]


def test_managed_policies_are_only_the_lambda_basics(iam: tuple[str, list[Grant], dict[str, list[str]]]) -> None:
    case, _, managed = iam
    for role, arns in managed.items():
        if role == "RolloutStateMachineRole":
            assert arns == [], arns
            continue
        in_vpc = case == "everything-on" and role in {"PreflightFunctionRole", "VerifyFunctionRole"}
        assert arns == ([AWS_BASIC, AWS_VPC] if in_vpc else [AWS_BASIC]), (role, arns)


def actions_of(found: list[Grant], action: str) -> list[Grant]:
    return [g for g in found if action in g.actions]


def test_only_the_rollout_step_writes_to_eks_and_ec2(iam: tuple[str, list[Grant], dict[str, list[str]]]) -> None:
    case, found, _ = iam
    writers = {
        g.role for a in ("eks:UpdateNodegroupVersion", "ec2:CreateLaunchTemplateVersion") for g in actions_of(found, a)
    }
    assert writers == {"RolloutStepFunctionRole"}  # == OWN_ROLE_ARNS, so dispatch can drop its CloudTrail events
    (update,) = actions_of(found, "eks:UpdateNodegroupVersion")
    assert update.resources == ("arn:*:eks:*:*:nodegroup/prod/*/*", "arn:*:eks:*:*:nodegroup/staging/*/*")
    assert update.condition == {"StringEquals": {"aws:RequestedRegion": REGION}}
    (version,) = actions_of(found, "ec2:CreateLaunchTemplateVersion")
    assert version.actions == ("ec2:CreateLaunchTemplateVersion",)
    assert version.resources == (f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/*",)
    tagged = {"StringEquals": {"aws:ResourceTag/eks-proxy/managed": "true"}}
    assert version.condition == (tagged if case == "everything-on" else None)


def test_cluster_reads_are_scoped_to_the_clusters(iam: tuple[str, list[Grant], dict[str, list[str]]]) -> None:
    _, found, _ = iam
    for grant in actions_of(found, "eks:DescribeCluster") + actions_of(found, "eks:ListNodegroups"):
        assert grant.resources == ("arn:*:eks:*:*:cluster/prod", "arn:*:eks:*:*:cluster/staging"), grant
        assert grant.condition == {"StringEquals": {"aws:RequestedRegion": REGION}}
    assert {g.role for g in actions_of(found, "eks:DescribeCluster")} == {
        "DispatchFunctionRole",
        "RolloutStepFunctionRole",
        "VerifyFunctionRole",
    }
    # Only dispatch lists node groups (plan_scope); the rollout step re-reads the node groups it is given.
    assert {g.role for g in actions_of(found, "eks:ListNodegroups")} == {"DispatchFunctionRole"}


def test_parameter_reads_name_the_one_parameter(iam: tuple[str, list[Grant], dict[str, list[str]]]) -> None:
    case, found, _ = iam
    reads = actions_of(found, "ssm:GetParameter")
    assert {g.role for g in reads} == {"DispatchFunctionRole", "RolloutStepFunctionRole", "PreflightFunctionRole"}
    for grant in reads:
        # A name with a leading slash maps to ...:parameter/eks-proxy/config (no double slash).
        assert grant.resources == (
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/eks-proxy/config",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/eks-proxy/ca-bundle",  # the CA bundle a value may name
        )
    decrypt = [g for g in actions_of(found, "kms:Decrypt") if "kms:GenerateDataKey*" not in g.actions]
    if case == "everything-on":
        assert {g.role for g in decrypt} == {g.role for g in reads}
        assert {g.resources for g in decrypt} == {(IAM_CASES[case]["ProxyParameterKmsKeyArn"],)}
    else:
        assert decrypt == []


def test_rollout_and_alarm_grants(iam: tuple[str, list[Grant], dict[str, list[str]]]) -> None:
    _, found, _ = iam
    starts = {(g.role, g.resources) for g in actions_of(found, "states:StartExecution")}
    assert starts == {
        ("DispatchFunctionRole", ("ref:RolloutStateMachine",)),
        # the Distributed Map starts its child executions of the same state machine (named <stack>-rollout)
        ("RolloutStateMachineRole", (f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK_NAME}-rollout",)),
    }
    publishers = actions_of(found, "sns:Publish")
    assert {g.role for g in publishers} == {"DispatchFunctionRole", "RolloutStepFunctionRole"}  # not the state machine
    assert "RolloutStateMachineRole" not in {g.role for g in actions_of(found, "kms:GenerateDataKey*")}
    for grant in publishers:
        assert grant.resources in {
            ("ref:AlarmTopic",),
            (f"arn:aws:sns:{REGION}:{ACCOUNT}:getatt:AlarmTopic.TopicName",),
        }
    invokes = actions_of(found, "lambda:InvokeFunction")
    assert {g.role for g in invokes} == {"RolloutStateMachineRole"}
    assert sorted(r for g in invokes for r in g.resources) == sorted(
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ref:{name}*" for name in FUNCTIONS if name != "DispatchFunction"
    )


def test_samconfig_defaults() -> None:
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    default = config["default"]
    assert default["global"]["parameters"]["stack_name"] == "eks-proxy"
    assert default["build"]["parameters"] == {"cached": True, "parallel": True}
    assert default["validate"]["parameters"]["lint"] is True
    deploy = default["deploy"]["parameters"]
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["confirm_changeset"] is True and deploy["resolve_s3"] is True
    assert "use_container" not in json.dumps(config)


def test_update_polling_is_granted_for_the_cluster_and_its_nodegroups(
    iam: tuple[str, list[Grant], dict[str, list[str]]],
) -> None:
    """DescribeUpdate's path names the cluster (/clusters/<name>/updates/<id>?nodegroupName=...) and the service
    authorization reference lists the cluster among its resource types: which ARN IAM evaluates for a node group
    update cannot be tested offline. Granted on both (read-only, the same clusters), the first poll of a rollout
    never meets AccessDenied."""
    _, found, _ = iam
    resources = {r for g in actions_of(found, "eks:DescribeUpdate") for r in g.resources}
    assert {"arn:*:eks:*:*:cluster/prod", "arn:*:eks:*:*:cluster/staging"} <= resources
    assert {"arn:*:eks:*:*:nodegroup/prod/*/*", "arn:*:eks:*:*:nodegroup/staging/*/*"} <= resources
    assert {g.role for g in actions_of(found, "eks:DescribeUpdate")} == {"RolloutStepFunctionRole"}
