-- macros: small functions the views share (run before any view).
-- Answers: how a tool_choice JSON value is classified (docs/definitions.md, "tool_choice form"), whether two
-- metadata objects are equal, the 95% Wilson interval of a rate, and output modalities as text.
-- Relies on: nothing but DuckDB's json functions.

-- The form of a tool_choice JSON value; NULL (key not present) is `absent`, JSON null is `invalid`.
CREATE OR REPLACE MACRO tool_choice_form(tc) AS CASE
    WHEN tc IS NULL THEN 'absent'
    WHEN json_type(tc) = 'VARCHAR' AND tc ->> '$' IN ('auto', 'none', 'required') THEN tc ->> '$'
    WHEN json_type(tc) = 'OBJECT' AND json_type(tc, '$.type') = 'VARCHAR' AND tc ->> 'type' = 'function'
         AND json_type(tc, '$.name') = 'VARCHAR' THEN 'function'
    WHEN json_type(tc) = 'OBJECT' AND json_type(tc, '$.type') = 'VARCHAR' AND tc ->> 'type' = 'mcp'
         AND json_type(tc, '$.server_label') = 'VARCHAR' THEN 'mcp'
    ELSE 'invalid'
END;

-- Two JSON objects are equal when they hold the same keys with the same values, in any key order.
CREATE OR REPLACE MACRO json_objects_equal(a, b) AS
    json_type(a) = 'OBJECT' AND json_type(b) = 'OBJECT'
    AND list_sort(map_entries(CAST(a AS MAP(VARCHAR, JSON))))
        = list_sort(map_entries(CAST(b AS MAP(VARCHAR, JSON))));

-- An `error` without event_id that answers the oldest waiting response.create (docs/definitions.md, "Matching" 2):
-- the active-response error (GA: its code; beta sent it with code null, known by its message) or a `response.` param.
CREATE OR REPLACE MACRO ordered_rejection(for_event_id, code, param, message) AS
    for_event_id IS NULL AND (code = 'conversation_already_has_active_response'
                              OR (code IS NULL AND starts_with(message, 'Conversation already has an active response'))
                              OR starts_with(param, 'response.'));

-- Milliseconds between two monotonic-clock readings (ns).
CREATE OR REPLACE MACRO ms_between(start_ns, end_ns) AS (end_ns - start_ns) / 1e6;

-- 95% Wilson score interval (z = 1.959964) of k failures in n decided requests; NULL when n = 0. The bounds
-- are exactly 0 for 0/n and exactly 1 for n/n (as rtreplay.analyzer.report.tool_choice.wilson), not rounding noise.
CREATE OR REPLACE MACRO wilson_centre(k, n) AS ((k / n) + 1.959964 ^ 2 / (2 * n)) / (1 + 1.959964 ^ 2 / n);
CREATE OR REPLACE MACRO wilson_half(k, n) AS
    1.959964 * sqrt((k / n) * (1 - k / n) / n + 1.959964 ^ 2 / (4 * n * n)) / (1 + 1.959964 ^ 2 / n);
CREATE OR REPLACE MACRO wilson_low(k, n) AS CASE
    WHEN n <= 0 THEN NULL WHEN k = 0 THEN 0.0 ELSE greatest(0.0, wilson_centre(k, n) - wilson_half(k, n)) END;
CREATE OR REPLACE MACRO wilson_high(k, n) AS CASE
    WHEN n <= 0 THEN NULL WHEN k = n THEN 1.0 ELSE least(1.0, wilson_centre(k, n) + wilson_half(k, n)) END;

-- A JSON list of output modalities as text, joined with '+' ("audio+text"); NULL when not a list.
CREATE OR REPLACE MACRO modalities_text(m) AS
    CASE WHEN json_type(m) = 'ARRAY' THEN array_to_string(json_extract_string(m, '$[*]'), '+') END;

-- A metadata object as a key (docs/definitions.md, "Matching"): its entries sorted, as text, so that two
-- objects with the same entries in any order give the same key; '' for anything but a non-empty object.
CREATE OR REPLACE MACRO metadata_key(m) AS CASE
    WHEN json_type(m) = 'OBJECT' AND len(json_keys(m)) > 0
        THEN CAST(list_sort(map_entries(CAST(m AS MAP(VARCHAR, JSON)))) AS VARCHAR)
    ELSE '' END;

-- A JSON value at `path` as a count: the integer when it is a positive integer, else 0 (the voice cost report).
CREATE OR REPLACE MACRO pos_int(j, path) AS CASE
    WHEN json_type(j, path) IN ('BIGINT', 'UBIGINT') AND TRY_CAST(j ->> path AS HUGEINT) > 0
    THEN TRY_CAST(j ->> path AS BIGINT) ELSE 0 END;
