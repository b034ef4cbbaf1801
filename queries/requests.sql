-- requests: one row per client `response.create` — what was asked, and with which tool_choice.
-- Answers: "which requests were sent, with which parameters?" Definitions: docs/definitions.md ("Request",
-- "tool_choice form"). `tool_choice` is the JSON sent (SQL NULL when the key is absent, JSON 'null' when
-- null was sent); `session_tool_choice` is the session's, from the last session.created/updated before the
-- request; `effective_tool_choice` is the one in force (the request's unless absent, else the session's).
-- Relies on: control_events.direction, type, seq, ts, mono_ns, event_id, payload ($.response.conversation, input,
-- tool_choice, output_modalities, tools, metadata); session_config.
WITH sent AS (
    SELECT
        session_id, seq, ts, mono_ns, event_id, payload,
        -- The `response` fields, parsed once per request (one json_extract over a list of paths).
        -- "Absent object = all absent": under a missing or non-object `response` every path is NULL.
        CASE WHEN json_valid(payload) THEN json_extract(payload, [
            '$.response.conversation', '$.response.input', '$.response.output_modalities', '$.response.tools',
            '$.response.metadata', '$.response.tool_choice']) END AS f
    FROM control_events
    WHERE direction = 'client' AND type = 'response.create'
),
fields AS (
    SELECT * EXCLUDE (f), f[1] AS conversation_sent, f[2] AS input, f[3] AS output_modalities_sent, f[4] AS tools,
           f[5] AS metadata_sent, f[6] AS tool_choice_sent
    FROM sent
),
session_events AS (SELECT * FROM session_config WHERE source = 'session'),
opened AS (
    SELECT session_id, arg_min(model, seq) AS model FROM session_config WHERE source = 'open' GROUP BY session_id
),
params AS (
    SELECT
        s.session_id || ':' || s.seq AS request_id,
        s.session_id, s.seq, s.ts, s.mono_ns, s.event_id, s.payload,
        CASE WHEN json_type(s.conversation_sent) = 'VARCHAR' THEN s.conversation_sent ->> '$' ELSE 'auto' END
            AS conversation,
        CASE WHEN conversation = 'none' THEN 'out-of-band' ELSE 'default' END AS scope,
        CASE  -- a non-list `input` counts as absent
            WHEN json_type(s.input) IS DISTINCT FROM 'ARRAY' THEN 'absent'
            WHEN json_array_length(s.input) = 0 THEN 'empty'
            ELSE 'items'
        END AS input_kind,
        modalities_text(s.output_modalities_sent) AS output_modalities,
        CASE WHEN json_type(s.tools) = 'ARRAY' THEN json_array_length(s.tools) END AS tools_count,
        CASE WHEN json_type(s.metadata_sent) = 'OBJECT' THEN s.metadata_sent END AS metadata,
        coalesce(c.model, o.model) AS model,
        s.tool_choice_sent AS tool_choice,
        tool_choice_form(s.tool_choice_sent) AS form_sent,
        c.tool_choice AS session_tool_choice,
        CASE
            WHEN form_sent <> 'absent' THEN form_sent
            -- no session event seen, or one without tool_choice: the server's default
            ELSE coalesce(nullif(c.tool_choice_form, 'absent'), 'auto')
        END AS form_effective,
        CASE WHEN form_sent <> 'absent' THEN s.tool_choice_sent ELSE c.tool_choice END AS effective_tool_choice
    FROM fields s
    ASOF LEFT JOIN session_events c ON s.session_id = c.session_id AND s.seq > c.seq
    LEFT JOIN opened o ON o.session_id = s.session_id
)
SELECT
    request_id, session_id, seq, ts, mono_ns, event_id, scope, conversation, input_kind, output_modalities,
    tools_count, metadata, model, tool_choice, form_sent, session_tool_choice, effective_tool_choice,
    form_effective,
    CASE form_effective
        WHEN 'function' THEN effective_tool_choice ->> 'name'
        WHEN 'mcp' THEN effective_tool_choice ->> 'server_label'
    END AS forced_name,
    CASE WHEN form_effective = 'mcp' THEN effective_tool_choice ->> 'name' END AS forced_mcp_tool,
    payload
FROM params
