-- latency_samples: one row per latency measurement of docs/definitions.md, "Latency" (ms, monotonic clock):
--   turn_to_first_audio          speech_stopped -> first audio of the turn's response (first audio delta; over
--                                WebRTC/SIP the first output_audio_buffer.started naming it) (the first response
--                                created after it and before the next speech_stopped; turns whose response
--                                streamed no audio have no sample)
--   request_to_created           client response.create -> its response.created (answers.sql)
--   request_to_first_delta       that request -> the first delta (any kind) of its response
--   tool_call_to_output          function_call_arguments.done -> the app's function_call_output
--   tool_output_to_first_delta   that output -> first delta of the next response created
--   tool_round_trip              the call -> that first delta
-- `minute` is floor((mono_ns - session start) / 60 s) of the turn's stop, the request or the call;
-- `context_tokens` the usage.input_tokens of the response waited for (turn_to_first_audio only).
-- Relies on: control_events, answers, voice_responses, voice_sessions, tool_rounds.
WITH stops AS (
    SELECT session_id, seq, mono_ns, lead(seq) OVER (PARTITION BY session_id ORDER BY seq) AS next_stop
    FROM control_events WHERE direction = 'server' AND type = 'input_audio_buffer.speech_stopped'
),
created AS (SELECT * FROM voice_responses WHERE created_seq IS NOT NULL),
turn_pairs AS (
    SELECT s.*, r.created_seq AS candidate
    FROM stops s ASOF LEFT JOIN (SELECT session_id, created_seq FROM created) r
        ON r.session_id = s.session_id AND r.created_seq > s.seq
),
samples AS (
    SELECT 'turn_to_first_audio' AS measure, p.session_id, p.seq, p.mono_ns AS at_mono,
           ms_between(p.mono_ns, coalesce(r.audio_mono, r.playback_mono)) AS ms,
           CASE WHEN json_type(r.usage, '$.input_tokens') IN ('BIGINT', 'UBIGINT')
                THEN CAST(r.usage ->> '$.input_tokens' AS BIGINT) END AS context_tokens
    FROM turn_pairs p
    JOIN created r ON r.session_id = p.session_id AND r.created_seq = p.candidate
    WHERE p.candidate < coalesce(p.next_stop, 9223372036854775807)
      AND coalesce(r.audio_mono, r.playback_mono) IS NOT NULL
    UNION ALL
    SELECT 'request_to_created', q.session_id, q.seq, q.mono_ns, ms_between(q.mono_ns, a.mono_ns), NULL
    FROM answers a JOIN control_events q ON q.session_id = a.session_id AND q.seq = a.request_seq
    WHERE a.answer_type = 'response.created'
    UNION ALL
    SELECT 'request_to_first_delta', q.session_id, q.seq, q.mono_ns, ms_between(q.mono_ns, r.first_mono), NULL
    FROM answers a JOIN control_events q ON q.session_id = a.session_id AND q.seq = a.request_seq
    JOIN created r ON r.session_id = a.session_id AND r.created_seq = a.answer_seq
    WHERE a.answer_type = 'response.created' AND r.first_mono IS NOT NULL
    UNION ALL
    SELECT 'tool_call_to_output', session_id, call_seq, call_mono, ms_between(call_mono, output_mono), NULL
    FROM tool_rounds WHERE call_seq IS NOT NULL AND output_seq IS NOT NULL
    UNION ALL
    SELECT 'tool_output_to_first_delta', session_id, call_seq, call_mono, ms_between(output_mono, next_first_mono), NULL
    FROM tool_rounds WHERE call_seq IS NOT NULL AND next_first_mono IS NOT NULL
    UNION ALL
    SELECT 'tool_round_trip', session_id, call_seq, call_mono, ms_between(call_mono, next_first_mono), NULL
    FROM tool_rounds WHERE call_seq IS NOT NULL AND next_first_mono IS NOT NULL
)
SELECT s.measure, s.session_id, s.seq, s.ms,
       greatest(0, (s.at_mono - v.start_mono) // 60000000000) AS minute, s.context_tokens
FROM samples s JOIN voice_sessions v ON v.session_id = s.session_id
