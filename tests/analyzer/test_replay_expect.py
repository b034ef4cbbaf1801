"""Expectations on replays: the grammar, and decisions on intervals (holds / fails / inconclusive)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtreplay.analyzer.replay.expect import (FAILS, HOLDS, INCONCLUSIVE, ExpectError, check_variants, decide,
                                             exit_code, parse)
from rtreplay.analyzer.replay.plan import Plan
from rtreplay.analyzer.replay.send import Answer
from rtreplay.analyzer.report.tool_choice import wilson

LOOKUP = {"type": "function", "name": "lookup_customer",
          "parameters": {"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"],
                         "additionalProperties": False}}


def plan(tool_choice: object = "auto") -> Plan:
    return Plan("gpt-realtime", (
        {"type": "session.update", "event_id": "rtreplay_0", "session": {"type": "realtime", "tools": [LOOKUP]}},
        {"type": "response.create", "event_id": "rtreplay_1",
         "response": {"conversation": "none", "tool_choice": tool_choice}}))


def call(name: str = "lookup_customer", arguments: str = '{"email": "a@example.com"}') -> dict:
    return {"type": "function_call", "id": "item_1", "name": name, "arguments": arguments, "call_id": "call_1"}


def result(outcome: str = "completed", output: list | None = None, variant: str = "recorded",
           tool_choice: object = "auto", recorded: Answer | None = None) -> SimpleNamespace:
    job = SimpleNamespace(variant=SimpleNamespace(name=variant), plan=plan(tool_choice), recorded=recorded)
    return SimpleNamespace(job=job, answer=Answer(outcome, output=output or []))


def one(text: str, results: list) -> tuple[str, str]:
    (d,) = decide([parse(text)], results)
    return d.verdict, d.how


# --- the grammar ----------------------------------------------------------------------------------------

def test_parse_reads_every_check_and_the_variant_prefix() -> None:
    e = parse("failure_rate<=5%")
    assert (e.check, e.op, e.value, e.variant) == ("failure_rate", "<=", 0.05, None)
    assert parse("forced_rate >= 0.95").value == 0.95
    assert (parse("outcome==completed").value, parse("outcome!=failed").op) == ("completed", "!=")
    assert parse("function==lookup_customer").value == "lookup_customer"
    assert parse("arguments_valid").check == "arguments_valid"
    assert parse("same=outcome,function").value == ("outcome", "function")
    # A variant name holding ':' and '=' (tool_choice=function:NAME) splits at the last ':' before a check.
    e = parse("variant=tool_choice=function:lookup:function==lookup")
    assert (e.variant, e.check, e.value, e.body) == ("tool_choice=function:lookup", "function", "lookup", "function==lookup")


@pytest.mark.parametrize("text", ["failure_rate<=105%", "failure_rate=<5%", "failure_rate<=", "outcome==done",
                                  "same=outcome,colour", "variant=:failure_rate<=5%", "arguments_valid=yes", ""])
def test_parse_refuses_with_a_line_that_says_what_is_expected(text: str) -> None:
    with pytest.raises(ExpectError, match=r"expected \[variant=NAME:\]CHECK"):
        parse(text)


def test_a_variant_that_is_not_sent_is_refused_before_anything_runs() -> None:
    with pytest.raises(ExpectError, match="no variant 'tool_choice=auto' is sent"):
        check_variants([parse("variant=tool_choice=auto:outcome==completed")], ["recorded"])


# --- rates: decided on the Wilson interval -------------------------------------------------------------

def test_zero_failures_in_three_is_not_evidence_of_five_percent() -> None:
    verdict, how = one("failure_rate<=5%", [result()] * 3)
    assert verdict == INCONCLUSIVE
    assert "failed 0/3" in how and "it takes 73 answered replays" in how
    assert one("failure_rate<=5%", [result()] * 72)[0] == INCONCLUSIVE
    assert one("failure_rate<=5%", [result()] * 73)[0] == HOLDS  # upper bound 3.84/(73+3.84) <= 5%


def test_all_failed_fails_on_the_lower_bound() -> None:
    verdict, how = one("failure_rate<=5%", [result("failed")] * 3)
    assert verdict == FAILS and "lower bound 43.9% > 5%" in how


def test_unfinished_replays_do_not_count_and_none_answered_is_inconclusive() -> None:
    assert one("failure_rate<=50%", [result("unfinished")] * 4)[0] == INCONCLUSIVE
    verdict, how = one("failure_rate>=50%", [result("failed")] * 10 + [result("unfinished")] * 5)
    assert verdict == HOLDS and "failed 10/10" in how


def test_forced_rate_counts_forced_calls_and_needs_a_forcing_variant() -> None:
    forced = [result(output=[call()], tool_choice="required")] * 80
    assert one("forced_rate>=95%", forced)[0] == HOLDS
    assert one("forced_rate>=95%", [result(tool_choice="required")] * 80)[0] == FAILS
    verdict, how = one("forced_rate>=95%", [result(output=[call()])] * 80)  # tool_choice auto forces nothing
    assert verdict == INCONCLUSIVE and "forces a tool" in how


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 200), data=st.data(), p=st.floats(0.001, 0.999), op=st.sampled_from(["<=", "<", ">=", ">"]))
def test_rate_verdicts_agree_with_the_interval(n: int, data: st.DataObject, p: float, op: str) -> None:
    k = data.draw(st.integers(0, n))
    results = [result("failed")] * k + [result()] * (n - k)
    (d,) = decide([parse(f"failure_rate{op}{p}")], results)
    low, high = wilson(k, n)
    holds = {"<=": high <= p, "<": high < p, ">=": low >= p, ">": low > p}[op]
    fails = {"<=": low > p, "<": low >= p, ">=": high < p, ">": high <= p}[op]
    assert d.verdict == (HOLDS if holds else FAILS if fails else INCONCLUSIVE)
    # The point estimate alone never decides: where the interval straddles p, the verdict is inconclusive.
    if low < p < high:
        assert d.verdict == INCONCLUSIVE


# --- every-replay checks --------------------------------------------------------------------------------

def test_outcome_function_and_arguments() -> None:
    good = [result(output=[call()])] * 5
    assert one("outcome==completed", good)[0] == HOLDS
    assert one("outcome==completed", good + [result("failed")])[0] == FAILS
    assert one("outcome==completed", good + [result("unfinished")])[0] == INCONCLUSIVE
    assert one("outcome!=failed", good)[0] == HOLDS
    assert one("function==lookup_customer", good)[0] == HOLDS
    verdict, how = one("function==lookup_customer", good + [result("failed")])
    assert verdict == FAILS and "1/6 answered replays break it; first: a failed replay called no function" in how
    assert one("function!=lookup_customer", good)[0] == FAILS
    assert one("arguments_valid", good)[0] == HOLDS
    verdict, how = one("arguments_valid", good + [result(output=[call(arguments='{"email": 7}')])])
    assert verdict == FAILS and "$.email: expected string, got integer" in how
    assert "not JSON" in one("arguments_valid", [result(output=[call(arguments="{")])])[1]
    assert "not among the request's tools" in one("arguments_valid", [result(output=[call("drop_tables")])])[1]
    assert one("arguments_valid", [result()])[0] == INCONCLUSIVE  # no call: nothing to check


def test_same_compares_each_replay_with_the_recorded_answer() -> None:
    recorded = Answer("completed", output=[call()])
    same = result(output=[call(arguments='{ "email":"a@example.com" }')], recorded=recorded)  # same JSON value
    assert one("same=outcome,output_types,function,arguments", [same])[0] == HOLDS
    verdict, how = one("same=outcome,function", [same, result("failed", recorded=recorded)])
    assert verdict == FAILS and "outcome: replay failed vs recorded completed" in how


def test_unprefixed_expectations_are_decided_per_variant_and_exit_code() -> None:
    results = [result(variant="recorded")] * 80 + [result("failed", variant="tool_choice=required")] * 80
    decisions = decide([parse("failure_rate<=5%"), parse("variant=recorded:outcome==completed")], results)
    assert [(d.variant, d.verdict) for d in decisions] == [
        ("recorded", HOLDS), ("tool_choice=required", FAILS), ("recorded", HOLDS)]
    assert exit_code(decisions) == 1 and exit_code(decisions[:1]) == 0
