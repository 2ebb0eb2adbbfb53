"""Reading ``template.yaml`` and evaluating its intrinsic functions.

CloudFormation's short tags (``!Ref``, ``!GetAtt``, ``!Sub``…) become their long
forms on load; ``Evaluator`` then resolves them against parameters, pseudo
parameters and the attributes of resources created so far. Only what the local
stack needs is supported; anything else raises, so the template and the
local stack cannot silently disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"  # the emulator's account
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(ValueError):
    """The template uses something the local stack cannot evaluate."""


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def default_path() -> Path:
    """``template.yaml`` as packaged beside this module.

    In the repository it is a link to the root's ``template.yaml`` (where
    ``sam`` reads it); a built wheel holds a copy, so an installed
    ``pipeline dev`` provisions exactly what ``sam deploy`` would.
    """
    return Path(__file__).with_name("template.yaml")


def load(path: Path | None = None) -> dict[str, Any]:
    text = (path or default_path()).read_text()
    document: dict[str, Any] = yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return document


def references(value: Any) -> Iterator[str]:
    """Logical names ``value`` refers to (Ref, GetAtt and Sub variables)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0]
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                local = set(inner[1]) if isinstance(inner, list) else set()
                for name in _SUB_VARIABLE.findall(text):
                    if name.split(".")[0] not in local:
                        yield name.split(".")[0]
                if isinstance(inner, list):
                    yield from references(inner[1])
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


class Evaluator:
    """Resolves intrinsic functions for one stack."""

    def __init__(
        self,
        template: Mapping[str, Any],
        stack_name: str,
        region: str,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self._values: dict[str, Any] = {
            "AWS::StackName": stack_name,
            "AWS::Region": region,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        #: Parameters with no value (no default, none given): an error only if used.
        self._unset: set[str] = set()
        for name, spec in template.get("Parameters", {}).items():
            given = (parameters or {}).get(name, spec.get("Default"))
            if given is None:
                self._unset.add(name)
            else:
                self._values[name] = given
        #: attribute values of created resources, "Name" for Ref, "Name.Attr" for GetAtt
        self._attributes: dict[str, Any] = {}

    def record(self, logical_id: str, ref: Any, **attributes: Any) -> None:
        self._values[logical_id] = ref
        for attribute, value in attributes.items():
            self._attributes[f"{logical_id}.{attribute}"] = value

    def knows(self, logical_id: str) -> bool:
        return logical_id in self._values

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, inner),) = value.items()
            function = self._functions.get(key)
            if function is not None:
                return function(inner)
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local stack")
        return {key: self(inner) for key, inner in value.items()}

    @property
    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._lookup,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": lambda inner: str(inner[0]).join(str(self(p)) for p in inner[1]),
        }

    def _get_att(self, inner: list[str]) -> Any:
        name = f"{inner[0]}.{inner[1]}"
        if name not in self._attributes:
            raise TemplateError(f"!GetAtt {name} is not known to the local stack")
        return self._attributes[name]

    def _lookup(self, name: str) -> Any:
        if name in self._unset:
            raise TemplateError(f"parameter {name} has no default and no value was given")
        if name not in self._values:
            raise TemplateError(f"!Ref {name} is not known to the local stack")
        return self._values[name]

    def _sub(self, inner: Any) -> str:
        text, local = (inner, {}) if isinstance(inner, str) else (inner[0], self(inner[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                return str(self({"Fn::GetAtt": name.split(".", 1)}))
            return str(self._lookup(name))

        return _SUB_VARIABLE.sub(replace, str(text))
