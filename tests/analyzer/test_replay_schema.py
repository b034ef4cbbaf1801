"""`arguments_valid`'s schema check agrees with the `jsonschema` package on the keywords tool schemas use."""
from __future__ import annotations

import jsonschema
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rtreplay.analyzer.replay.schema import arguments_problem, problem

SCHEMAS = [
    {"type": "object", "properties": {"email": {"type": "string", "minLength": 3, "pattern": "@"},
                                      "limit": {"type": "integer", "minimum": 1, "maximum": 50}},
     "required": ["email"], "additionalProperties": False},
    {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
                                      "mode": {"enum": ["fast", "slow", 1, True, None]}},
     "additionalProperties": {"type": "number", "exclusiveMaximum": 10}},
    {"type": ["string", "null"], "maxLength": 5},
    {"anyOf": [{"type": "string"}, {"type": "number", "exclusiveMinimum": 0}]},
    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]},
    {"allOf": [{"type": "object", "required": ["a"]}, {"properties": {"a": {"const": [1, {"b": False}]}}}]},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 60) | st.floats(-20, 20, allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["fast", "slow", "a@b", "x"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["email", "limit", "ids", "mode", "a", "b", "other"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(schema=st.sampled_from(SCHEMAS), value=json_values)
def test_agrees_with_jsonschema(schema: dict, value: object) -> None:
    expected = jsonschema.Draft202012Validator(schema).is_valid(value)
    assert (problem(value, schema, "$") is None) == expected, problem(value, schema, "$")


def test_arguments_are_a_json_text() -> None:
    schema = SCHEMAS[0]
    assert arguments_problem(orjson.dumps({"email": "a@b.c", "limit": 3}).decode(), schema) is None
    assert arguments_problem('{"email": "a@b.c", "extra": 1}', schema) == "$: property 'extra' is not allowed"
    assert arguments_problem('{"limit": 3}', schema) == "$: missing required property 'email'"
    assert arguments_problem("not json", schema).startswith("arguments are not JSON")
    assert arguments_problem(None, schema) == "arguments are not a JSON text"
    assert arguments_problem("{}", None) is None  # a tool without parameters takes anything
