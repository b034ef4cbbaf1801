-- session_config: the session settings the server reported, one row per server `session.created` /
-- `session.updated`, plus one row per `proxy.open` carrying the `model=` query parameter.
-- Answers: "which tool_choice and model were in force at event N?" (ASOF-join on seq; see requests.sql).
-- Relies on: control_events.direction, type, seq, ts, payload ($.session.tool_choice, $.session.model; for
-- proxy.open the `model=` parameter of $.query, else of the query part of $.path).
SELECT
    session_id,
    seq,
    ts,
    type,
    CASE WHEN type = 'proxy.open' THEN 'open' ELSE 'session' END AS source,
    CASE WHEN type <> 'proxy.open' THEN json_extract(payload, '$.session.tool_choice') END AS tool_choice,
    CASE WHEN type <> 'proxy.open' THEN tool_choice_form(json_extract(payload, '$.session.tool_choice')) END
        AS tool_choice_form,
    CASE
        WHEN type <> 'proxy.open' THEN
            CASE WHEN json_type(payload, '$.session.model') = 'VARCHAR' THEN payload ->> '$.session.model' END
        -- proxy.open: the `query` string, else the part of `path` after '?'
        ELSE nullif(url_decode(regexp_extract('&' || ltrim(CASE
            WHEN json_type(payload, '$.query') = 'VARCHAR' THEN payload ->> 'query'
            WHEN contains(payload ->> 'path', '?') THEN substr(payload ->> 'path', strpos(payload ->> 'path', '?') + 1)
            ELSE '' END, '?'), '&model=([^&]*)', 1)), '')
    END AS model
FROM control_events
WHERE ((direction = 'server' AND type IN ('session.created', 'session.updated'))
       OR (direction = 'proxy' AND type = 'proxy.open'))
  AND json_valid(payload)
