"""rtreplay.analyzer.report.tool_choice: grouping, rates, Wilson intervals, splits, filters and the headline, on hand-made requests."""
from __future__ import annotations

import datetime as dt

import pytest

from rtreplay.analyzer.report.tool_choice import Filters, ReportError, build_report, headline, parse_splits, parse_time, wilson
from report_factory import T0, make_request, many


@pytest.mark.parametrize(
    "failures,n,low,high",
    [(0, 12, 0.0, 0.2425), (12, 12, 0.7575, 1.0), (5, 10, 0.2366, 0.7634), (1, 100, 0.0018, 0.0545)],
)
def test_wilson_matches_published_values(failures, n, low, high):
    lo, hi = wilson(failures, n)
    assert lo == pytest.approx(low, abs=5e-5) and hi == pytest.approx(high, abs=5e-5)


def test_wilson_is_undefined_without_decided_requests():
    assert wilson(0, 0) is None


def test_counts_rates_and_denominator_follow_the_definitions():
    requests = (many(3, "function", "failed") + many(1, "function", "completed") + many(2, "function", "rejected")
                + many(4, "function", "unfinished") + many(1, "function", "cancelled", reason="client_cancelled")
                + many(1, "function", "incomplete", reason="max_output_tokens"))
    (g,) = build_report(requests).groups
    assert g.requests == 12
    assert g.outcomes == {"completed": 1, "failed": 3, "cancelled": 1, "incomplete": 1, "rejected": 2, "unfinished": 4}
    assert g.decided == 8  # rejected stay in the denominator, unfinished do not
    assert g.failure_rate == pytest.approx(3 / 8)
    assert g.interval == wilson(3, 8)


def test_groups_come_in_form_order_then_sorted_split_values_with_null_last():
    requests = (many(1, "invalid", "rejected") + many(1, "auto", "completed", scope="default")
                + many(1, "auto", "completed") + many(1, "absent", "completed")
                + many(1, "function", "failed", model=None) + many(1, "function", "failed", model="gpt-realtime"))
    report = build_report(requests, splits=["scope", "model"])
    assert [(g.form, g.split) for g in report.groups] == [
        ("absent", (("scope", "out-of-band"), ("model", "gpt-realtime"))),
        ("auto", (("scope", "default"), ("model", "gpt-realtime"))),
        ("auto", (("scope", "out-of-band"), ("model", "gpt-realtime"))),
        ("function", (("scope", "out-of-band"), ("model", "gpt-realtime"))),
        ("function", (("scope", "out-of-band"), ("model", None))),
        ("invalid", (("scope", "out-of-band"), ("model", "gpt-realtime"))),
    ]


def test_groups_split_by_the_request_fields_each_split_names():
    a = make_request("auto", tools_count=2, input_kind="empty", output_modalities="audio",
                     metadata={"purpose": "summary"}, ts=T0 + dt.timedelta(days=1), session_id="s2")
    b = make_request("auto", tools_count=None, metadata=None)
    report = build_report([a, b], splits=["tools", "input", "modalities", "metadata:purpose", "session", "day"])
    assert [dict(g.split) for g in report.groups] == [
        {"tools": 2, "input": "empty", "modalities": "audio", "metadata:purpose": "summary", "session": "s2",
         "day": "2026-03-02"},
        {"tools": None, "input": "absent", "modalities": "text", "metadata:purpose": None,
         "session": b.session_id, "day": "2026-03-01"},
    ]


def test_top_errors_are_counted_per_type_and_code_most_frequent_first():
    requests = (many(2, "function", "failed") + many(3, "function", "failed", error_type="server_error",
                                                      error_code="overloaded")
                + many(1, "function", "rejected"))
    (g,) = build_report(requests).groups
    assert [(e.outcome, e.error_type, e.error_code, e.count) for e in g.top_errors] == [
        ("failed", "server_error", "overloaded", 3),
        ("failed", "server_error", None, 2),
        ("rejected", "invalid_request_error", "missing_required_parameter", 1),
    ]


def test_forced_call_counts_only_requests_where_it_is_known():
    requests = many(3, "function", "completed") + many(2, "function", "failed") + many(1, "function", "unfinished")
    requests += many(2, "absent", "completed", form_effective="required", forced_call=True)
    report = build_report(requests, splits=[])
    absent, function = report.groups
    assert (function.forced_expected, function.forced_happened) == (5, 3)
    assert (absent.forced_expected, absent.forced_happened) == (2, 2)
    assert absent.effective_forms == {"required": 2}
    auto = build_report(many(2, "auto", "completed")).groups[0]
    assert auto.forced_expected == 0


@pytest.mark.parametrize(
    "spec,expected",
    [
        ([], ("scope",)),
        (["model"], ("model",)),
        (["+model"], ("scope", "model")),
        (["+model,day", "session"], ("scope", "model", "day", "session")),
        (["none"], ()),
        (["conversation"], ("scope",)),
        (["metadata:response_type"], ("metadata:response_type",)),
    ],
)
def test_by_replaces_the_default_split_or_adds_to_it_with_a_plus(spec, expected):
    assert parse_splits(spec) == expected


@pytest.mark.parametrize("spec", [["colour"], ["metadata:"], ["+speed"]])
def test_unknown_splits_are_refused_with_the_list_of_valid_ones(spec):
    with pytest.raises(ReportError, match="choose from"):
        parse_splits(spec)


def test_filters_select_sessions_times_and_out_of_band_requests():
    early = make_request("auto", ts=T0, session_id="a")
    late = make_request("auto", ts=T0 + dt.timedelta(hours=5), session_id="b")
    default = make_request("auto", scope="default", ts=T0, session_id="a")
    requests = [early, late, default]

    def kept(**kw):
        return build_report(requests, filters=Filters(**kw)).total.requests

    assert kept() == 3
    assert kept(sessions=("a",)) == 2
    assert kept(oob_only=True) == 2
    assert kept(since=T0 + dt.timedelta(hours=1)) == 1
    assert kept(until=T0 + dt.timedelta(hours=5)) == 2  # until is exclusive
    assert kept(since=parse_time("2026-03-01"), until=parse_time("2026-03-01T13:00Z")) == 2


def test_parse_time_reads_dates_and_refuses_nonsense():
    assert parse_time("2026-03-01") == dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(ReportError, match="ISO"):
        parse_time("last tuesday")


def test_headline_answers_the_seed_question_when_the_data_allows():
    requests = many(12, "function", "failed") + many(12, "required", "completed") + many(11, "auto", "completed")
    requests += many(1, "auto", "failed")
    requests += many(5, "none", "completed")  # too few to take part
    h = headline(requests)
    assert h.text == ("Out-of-band requests with tool_choice form `function` failed 100% (12/12, 95% CI 76–100%) "
                      "vs 0% for `required` (0/12, 0–24%): intervals do not overlap.")
    assert (h.scope, h.worst.form, h.best.form, h.overlap) == ("out-of-band", "function", "required", False)


def test_headline_names_every_form_tied_at_the_best_rate_but_not_rejected_ones():
    requests = many(12, "function", "failed") + many(12, "required", "completed") + many(12, "auto", "completed")
    requests += many(20, "none", "completed") + many(12, "invalid", "rejected")
    h = headline(requests)
    assert h.text == ("Out-of-band requests with tool_choice form `function` failed 100% (12/12, 95% CI 76–100%) "
                      "vs 0% for `auto`, `none`, `required` (`auto` 0/12, `none` 0/20, `required` 0/12; "
                      "widest 0–24%): intervals do not overlap.")
    assert h.best.form in ("auto", "required") and h.best.decided == 12


def test_headline_says_when_intervals_overlap():
    requests = many(3, "function", "failed") + many(9, "function", "completed") + many(12, "auto", "completed")
    h = headline(requests)
    assert h.overlap is True
    assert h.text.endswith("intervals overlap, so the difference may be chance.")


def test_headline_says_plainly_when_there_are_too_few_requests():
    requests = many(9, "function", "failed") + many(30, "auto", "completed") + many(20, "required", "unfinished")
    h = headline(requests)
    assert h.text.startswith("Too few requests to tell")
    assert "function 9" in h.text and h.worst is None and h.scope is None


def test_headline_falls_back_to_the_default_conversation_and_notes_out_of_band_is_undecided():
    requests = (many(10, "auto", "completed", scope="default") + many(10, "none", "failed", scope="default")
                + many(2, "function", "failed"))
    h = headline(requests)
    assert h.scope == "default"
    assert h.text.startswith("Default-conversation requests with tool_choice form `none` failed 100%")
    assert h.text.endswith("(out-of-band: too few requests to tell).")


def test_headline_with_equal_rates_names_no_worst_form():
    h = headline(many(10, "auto", "completed") + many(10, "required", "completed"))
    assert "same rate (0%)" in h.text


def test_headline_on_no_requests():
    assert headline([]).text.startswith("No requests to report")


def test_outcomes_over_time_use_hours_for_short_spans_and_fill_gaps():
    requests = [make_request("auto", ts=T0), make_request("auto", "failed", ts=T0 + dt.timedelta(hours=2, minutes=5))]
    report = build_report(requests)
    assert report.time_unit == "hour"
    assert [(b.start.hour, b.outcomes["completed"], b.outcomes["failed"]) for b in report.over_time] == [
        (12, 1, 0), (13, 0, 0), (14, 0, 1)]


def test_outcomes_over_time_use_days_for_long_spans():
    requests = [make_request("auto", ts=T0), make_request("auto", ts=T0 + dt.timedelta(days=5))]
    report = build_report(requests)
    assert report.time_unit == "day" and len(report.over_time) == 6


def test_failed_requests_are_listed_in_session_and_seq_order():
    requests = [make_request("function", "failed", session_id="b", seq=1),
                make_request("function", "failed", session_id="a", seq=9),
                make_request("auto", "completed", session_id="a", seq=2)]
    assert [(r.session_id, r.seq) for r in build_report(requests).failed] == [("a", 9), ("b", 1)]
