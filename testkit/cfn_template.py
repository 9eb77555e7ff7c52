"""Read template.yaml the way CloudFormation would for one set of parameter values, for tests of its content.

`load_template()` parses the YAML short forms (!Ref, !Sub, !GetAtt, ...) with cfn-lint's decoder; `Stack` evaluates
conditions and the intrinsic functions the template uses (Ref, Fn::Sub, Fn::Join, Fn::Split, Fn::Select, Fn::If,
Fn::GetAtt, Condition functions) against parameter values, so a test can ask "what is this rule's event pattern
when ClusterNames is prod,staging?" and get plain JSON. An intrinsic it does not know raises, so a test never
silently compares an unevaluated function.

>>> stack = Stack(load_template(), {"ClusterNames": "prod,staging"})
>>> stack.resolve({"Fn::Split": [",", {"Fn::Join": [",", {"Ref": "ClusterNames"}]}]})
['prod', 'staging']
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "template.yaml"
ACCOUNT = "123456789012"
REGION = "eu-west-1"
STACK_NAME = "eks-proxy"
NO_VALUE = object()  # AWS::NoValue: removed from the enclosing list or mapping


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain dicts, short-form tags turned into their long forms ({"Ref": ...}, {"Fn::Sub": ...})."""
    from cfnlint.decode import decode_str

    template, matches = decode_str(path.read_text())
    assert not matches, matches
    plain: dict[str, Any] = _plain(template)
    return plain


def _plain(node: Any) -> Any:
    # cfn-lint's node types subclass dict/list/str; turn them into the builtins so comparisons and json work.
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def sam_transform(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The CloudFormation template SAM makes of ours (roles, rules, permissions), via the samtranslator next to `sam`.

    Local paths are replaced by S3 URIs first, as `sam package` would. Runs offline (no managed policy lookups).
    """
    sam = shutil.which("sam")
    assert sam, "sam is not on PATH"
    python = Path(os.path.realpath(sam)).parent / "python"
    if not python.exists():
        python = Path(sam).parent / "python"
    script = r"""
import json, sys
from samtranslator.translator.transform import transform
class NoManagedPolicies:
    def load(self):
        return {}
doc = json.load(sys.stdin)
template, parameters = doc["template"], doc["parameters"]
for resource in template["Resources"].values():
    for key in ("CodeUri", "ContentUri", "DefinitionUri"):
        if isinstance(resource.get("Properties", {}).get(key), str):
            resource["Properties"][key] = "s3://artifacts/" + key
json.dump(transform(template, parameters, NoManagedPolicies()), sys.stdout)
"""
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
    done = subprocess.run(
        [str(python), "-c", script],
        input=json.dumps({"template": template, "parameters": parameters}),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


class ParameterRejected(ValueError):
    """CloudFormation would refuse this parameter value before creating anything."""


def check_parameter(name: str, spec: dict[str, Any], value: str | list[str]) -> None:
    """AllowedValues, AllowedPattern (per entry for a list, whole value) and Min/MaxValue, as CloudFormation checks."""
    for entry in value if isinstance(value, list) else [value]:
        if "AllowedValues" in spec and entry not in [str(v) for v in spec["AllowedValues"]]:
            raise ParameterRejected(f"{name}: {entry!r} not in AllowedValues")
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], entry):
            raise ParameterRejected(f"{name}: {entry!r} does not match {spec['AllowedPattern']}")
        if spec["Type"] == "Number":
            number = float(entry)
            if number < float(spec.get("MinValue", number)) or number > float(spec.get("MaxValue", number)):
                raise ParameterRejected(f"{name}: {entry} out of range")


class Stack:
    """One deployment of a template: parameter values (defaults filled in), conditions, intrinsic evaluation."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.template = template
        self.values: dict[str, Any] = {}
        given = parameters or {}
        for name, spec in template.get("Parameters", {}).items():
            raw = given.get(name, spec.get("Default"))
            if raw is None:
                raise KeyError(f"parameter {name} has no default: pass a value")
            raw = str(raw)
            self.values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
            check_parameter(name, spec, self.values[name])
        unknown = set(given) - set(self.values)
        assert not unknown, f"unknown parameters {unknown}"
        self.values.update(
            {
                "AWS::AccountId": ACCOUNT,
                "AWS::Region": REGION,
                "AWS::Partition": "aws",
                "AWS::StackName": STACK_NAME,
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::NoValue": NO_VALUE,
            }
        )
        self._conditions: dict[str, bool] = {}

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def resources(self) -> dict[str, dict[str, Any]]:
        """Resources that exist in this deployment (their Condition holds), unresolved."""
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    # ------------------------------------------------------------------ intrinsics
    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.template["Resources"]:
            return f"ref:{name}"  # a stable stand-in for a physical id / ARN
        raise KeyError(f"Ref to unknown {name}")

    def get_att(self, logical_id: str, attribute: str) -> str:
        assert logical_id in self.template["Resources"] or logical_id.endswith("Role"), logical_id
        if attribute == "Arn" and logical_id.endswith("Role"):
            return f"arn:aws:iam::{ACCOUNT}:role/{STACK_NAME}-{logical_id}-EXAMPLE1234"
        return f"getatt:{logical_id}.{attribute}"

    def resolve(self, node: Any) -> Any:
        """Evaluate every intrinsic function in ``node``; AWS::NoValue entries disappear."""
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"intrinsic {key} is not evaluated by the test helper")
        out = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self.resolve(v) for k, v in variables.items()}

        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return str(local[name])
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                return self.get_att(*name.split(".", 1))
            resolved = self.ref(name)
            assert isinstance(resolved, str), f"${{{name}}} is not a string"
            return resolved

        return re.sub(r"\$\{([^}]+)\}", value, text)


def _join(stack: Stack, arg: Any) -> str:
    delimiter, items = arg
    assert isinstance(delimiter, str), "Fn::Join's delimiter must be a literal string"
    values = stack.resolve(items)
    return delimiter.join(str(v) for v in values)


def _split(stack: Stack, arg: Any) -> list[str]:
    delimiter, text = arg
    assert isinstance(delimiter, str)
    return str(stack.resolve(text)).split(delimiter)


def _select(stack: Stack, arg: Any) -> Any:
    index, items = arg
    return stack.resolve(items)[int(stack.resolve(index))]


def _if(stack: Stack, arg: Any) -> Any:
    name, when_true, when_false = arg
    return stack.resolve(when_true if stack.condition(name) else when_false)


_INTRINSICS: dict[str, Any] = {
    "Ref": lambda s, a: s.ref(a),
    "Fn::Sub": lambda s, a: s._sub(a),
    "Fn::Join": _join,
    "Fn::Split": _split,
    "Fn::Select": _select,
    "Fn::If": _if,
    "Fn::GetAtt": lambda s, a: s.get_att(*(a.split(".", 1) if isinstance(a, str) else a)),
    "Fn::Equals": lambda s, a: s.resolve(a[0]) == s.resolve(a[1]),
    "Fn::Not": lambda s, a: not s.resolve(a[0]),
    "Fn::And": lambda s, a: all(s.resolve(x) for x in a),
    "Fn::Or": lambda s, a: any(s.resolve(x) for x in a),
    "Condition": lambda s, a: s.condition(a),
}
