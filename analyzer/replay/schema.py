"""Checking a function call's arguments against its tool's JSON schema, without a JSON Schema library.

Function tools declare `parameters` as JSON Schema; a call's `arguments` is a JSON text the model wrote.
The keywords below are the ones tool schemas use (OpenAI's function-calling guide, strict mode); any other
keyword is ignored, so an unusual schema can only make the check more lenient, never reject a good call.
`tests/analyzer/test_replay_schema.py` holds this equal to the `jsonschema` package on the keywords it covers.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def arguments_problem(arguments: Any, schema: Any) -> str | None:
    """Why `arguments` (the call's JSON text) does not satisfy `schema`; None when it does."""
    if not isinstance(arguments, str):
        return "arguments are not a JSON text"
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return f"arguments are not JSON: {arguments[:60]!r}"
    if not isinstance(schema, dict):
        return None  # no schema to hold it to
    return problem(value, schema, "$")


def problem(value: Any, schema: dict[str, Any], path: str) -> str | None:
    """The first way `value` breaks `schema` (a JSON path and what is wrong), or None."""
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(TYPES.get(k, lambda _v: True)(value) for k in kinds):
            return f"{path}: expected {'/'.join(map(str, kinds))}, got {_json_type(value)}"
    if "enum" in schema and isinstance(schema["enum"], list) and not any(_same(value, v) for v in schema["enum"]):
        return f"{path}: {value!r} is not one of {schema['enum']}"
    if "const" in schema and not _same(value, schema["const"]):
        return f"{path}: {value!r} is not {schema['const']!r}"
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key) or [] if isinstance(s, dict)]
        passing = sum(problem(value, s, path) is None for s in options)
        if options and (passing == 0 or key == "oneOf" and passing > 1):
            return f"{path}: matches {passing} of the {key} schemas"
    for sub in schema.get("allOf") or []:
        if isinstance(sub, dict) and (why := problem(value, sub, path)):
            return why
    if isinstance(value, dict):
        return _object(value, schema, path)
    if isinstance(value, list):
        return _array(value, schema, path)
    if isinstance(value, str):
        return _string(value, schema, path)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(value, schema, path)
    return None


def _object(value: dict[str, Any], schema: dict[str, Any], path: str) -> str | None:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for name in schema.get("required") or []:
        if name not in value:
            return f"{path}: missing required property {name!r}"
    extra = schema.get("additionalProperties", True)
    for name, v in value.items():
        sub = props.get(name)
        if isinstance(sub, dict):
            if why := problem(v, sub, f"{path}.{name}"):
                return why
        elif extra is False:
            return f"{path}: property {name!r} is not allowed"
        elif isinstance(extra, dict) and (why := problem(v, extra, f"{path}.{name}")):
            return why
    return None


def _array(value: list[Any], schema: dict[str, Any], path: str) -> str | None:
    if isinstance(schema.get("minItems"), int) and len(value) < schema["minItems"]:
        return f"{path}: fewer than {schema['minItems']} items"
    if isinstance(schema.get("maxItems"), int) and len(value) > schema["maxItems"]:
        return f"{path}: more than {schema['maxItems']} items"
    items = schema.get("items")
    if isinstance(items, dict):
        for i, v in enumerate(value):
            if why := problem(v, items, f"{path}[{i}]"):
                return why
    return None


def _string(value: str, schema: dict[str, Any], path: str) -> str | None:
    if isinstance(schema.get("minLength"), int) and len(value) < schema["minLength"]:
        return f"{path}: shorter than {schema['minLength']}"
    if isinstance(schema.get("maxLength"), int) and len(value) > schema["maxLength"]:
        return f"{path}: longer than {schema['maxLength']}"
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if not re.search(pattern, value):
                return f"{path}: does not match {pattern!r}"
        except re.error:
            return None  # a pattern Python cannot read is not the call's fault
    return None


def _number(value: float, schema: dict[str, Any], path: str) -> str | None:
    bounds = (("minimum", lambda b: value < b), ("maximum", lambda b: value > b),
              ("exclusiveMinimum", lambda b: value <= b), ("exclusiveMaximum", lambda b: value >= b))
    for key, broken in bounds:
        bound = schema.get(key)
        if isinstance(bound, (int, float)) and not isinstance(bound, bool) and broken(bound):
            return f"{path}: {value} breaks {key} {bound}"
    return None


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true and 1 differ (Python's == says they are equal), 1 and 1.0 do not."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if TYPES[name](value):
            return name
    return type(value).__name__
