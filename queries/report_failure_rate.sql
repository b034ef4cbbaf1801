-- report failure_rate: failure rate by tool_choice form sent, for all requests and split by scope.
-- Answers: "does forcing a tool (and how) make requests fail?" — the numbers of `rtreplay analyze`, field
-- for field (docs/definitions.md "Rates"; docs/report.md "Group fields"): decided = requests - unfinished;
-- failure_rate = failed / decided (NULL when 0) with its 95% Wilson interval ci_low..ci_high; rejected
-- requests are counted on their own and stay in `decided`. forced_expected / forced_happened count requests
-- whose forced call is known / was made. form_effective (JSON object: form -> requests) and top_errors (JSON
-- list of up to 3 {outcome, type, code, count} over failed and rejected requests, most frequent first).
-- Rows: scope `all`, `default`, `out-of-band`; within each, the forms seen in definition order, then
-- form `all` (the scope's total; scope `all` + form `all` is analyze's `totals`).
-- Relies on: outcomes (scope, form_sent, form_effective, outcome, error_type, error_code, forced_call).
WITH base AS MATERIALIZED (  -- read outcomes once
    SELECT scope, form_sent, form_effective, outcome, error_type, error_code, forced_call FROM outcomes
),
tagged AS (  -- every request in four groups: (its scope | all) x (its form | all)
    SELECT
        CASE WHEN g.any_scope THEN 'all' ELSE b.scope END AS scope,
        CASE WHEN g.any_form THEN 'all' ELSE b.form_sent END AS form,
        b.form_effective, b.outcome, b.error_type, b.error_code, b.forced_call
    FROM base b
    CROSS JOIN (VALUES (false, false), (false, true), (true, false), (true, true)) g(any_scope, any_form)
),
counts AS (
    SELECT
        scope, form,
        count(*) AS requests,
        count(*) FILTER (WHERE outcome = 'completed') AS completed,
        count(*) FILTER (WHERE outcome = 'failed') AS failed,
        count(*) FILTER (WHERE outcome = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE outcome = 'incomplete') AS incomplete,
        count(*) FILTER (WHERE outcome = 'rejected') AS rejected,
        count(*) FILTER (WHERE outcome = 'unfinished') AS unfinished,
        count(forced_call) AS forced_expected,
        count(*) FILTER (WHERE forced_call) AS forced_happened
    FROM tagged
    GROUP BY scope, form
),
effective AS (
    SELECT scope, form,
           ('{' || string_agg(to_json(form_effective) || ':' || n, ',' ORDER BY list_position(
               ['absent', 'auto', 'none', 'required', 'function', 'mcp', 'invalid'], form_effective)) || '}')::JSON
               AS form_effective
    FROM (SELECT scope, form, form_effective, count(*) AS n FROM tagged GROUP BY ALL)
    GROUP BY ALL
),
error_counts AS (
    SELECT scope, form, outcome, error_type, error_code, count(*) AS n,
           row_number() OVER (PARTITION BY scope, form
                              ORDER BY count(*) DESC, outcome, coalesce(error_type, ''), coalesce(error_code, ''))
               AS rank
    FROM tagged
    WHERE outcome IN ('failed', 'rejected')
    GROUP BY scope, form, outcome, error_type, error_code
),
top AS (
    SELECT scope, form,
           ('[' || string_agg(json_object('outcome', outcome, 'type', error_type, 'code', error_code, 'count', n),
                              ',' ORDER BY rank) || ']')::JSON AS top_errors
    FROM error_counts
    WHERE rank <= 3
    GROUP BY ALL
)
SELECT
    c.scope,
    c.form,
    c.requests, c.completed, c.failed, c.cancelled, c.incomplete, c.rejected, c.unfinished,
    c.requests - c.unfinished AS decided,
    c.failed / nullif(c.requests - c.unfinished, 0) AS failure_rate,
    wilson_low(c.failed, c.requests - c.unfinished) AS ci_low,
    wilson_high(c.failed, c.requests - c.unfinished) AS ci_high,
    c.forced_expected,
    c.forced_happened,
    e.form_effective,
    coalesce(t.top_errors, '[]'::JSON) AS top_errors
FROM counts c
JOIN effective e USING (scope, form)
LEFT JOIN top t USING (scope, form)
ORDER BY list_position(['all', 'default', 'out-of-band'], c.scope),
         list_position(['absent', 'auto', 'none', 'required', 'function', 'mcp', 'invalid', 'all'], c.form)
