"""Function-call arguments that validate against a tool's JSON schema, filled from the conversation.

`fill(schema, text)` builds a value for the schema: strings get `text` (the context the "model" saw,
e.g. the last user message or a summary), numbers the first number in `text` (clamped to the bounds),
booleans `true`, enums and consts their first value, arrays and objects are filled recursively (every
declared property, so `required` is met; nothing undeclared, so `additionalProperties: false` holds).
Unsupported keywords (`pattern`, `format`, `$ref`) are not honoured.
"""
from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def fill(schema: Any, text: str) -> Any:
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return fill(schema[combinator][0], text)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: fill(sub, text) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        return [fill(schema.get("items", {}), text) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number(schema, text, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, text)


def _number(schema: dict, text: str, *, integer: bool) -> int | float:
    found = _NUMBER.search(text)
    value: float = float(found.group()) if found else 0
    for bound, pick in (("minimum", max), ("exclusiveMinimum", max), ("maximum", min), ("exclusiveMaximum", min)):
        if isinstance(schema.get(bound), (int, float)):
            limit = schema[bound] + (1 if bound == "exclusiveMinimum" else -1 if bound == "exclusiveMaximum" else 0)
            value = pick(value, limit)
    return int(value) if integer else value


def _string(schema: dict, text: str) -> str:
    value = text or "none"
    if isinstance(schema.get("maxLength"), int):
        value = value[: schema["maxLength"]]
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        value = value.ljust(schema["minLength"], ".")
    return value
