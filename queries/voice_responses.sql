-- voice_responses: one row per response (per session and response_id) with what the voice reports read:
-- when it was created, how it ended, its usage, the model and turn it belongs to, and its streaming.
-- Answers: "for each response: first delta, first audio, audio generated, usage, turn, model?"
-- (docs/definitions.md, "Voice sessions"). `turn` counts the session's speech_stopped events before its
-- response.created (before its response.done when never created); `model`, `bytes_per_ms` are those in
-- force then (the session's model, else the proxy.open `model=`); `out_of_band`: response.created carries
-- `conversation_id: null`; `detail`: the error code (else type) of a failed response, the status of an unknown
-- one, the reason of an incomplete or cancelled one; `playback_mono`: the first output_audio_buffer.started naming
-- it (WebRTC/SIP, where no audio deltas come).
-- Relies on: control_events (response.created, response.done, speech_stopped), voice_items, voice_settings.
WITH created AS (
    SELECT session_id, response_id, seq, ts, mono_ns,
           json_valid(payload) AND json_type(payload, '$.response.conversation_id') = 'NULL' AS out_of_band
    FROM control_events
    WHERE direction = 'server' AND type = 'response.created' AND response_id IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY session_id, response_id ORDER BY seq) = 1
),
done AS (
    SELECT session_id, response_id, seq, ts, f[1] ->> '$' AS status, f[2] AS reason, f[3] AS code, f[4] AS etype,
           f[5] AS usage
    FROM (
        SELECT *, CASE WHEN json_valid(payload) THEN json_extract(payload, [
                   '$.response.status', '$.response.status_details.reason', '$.response.status_details.error.code',
                   '$.response.status_details.error.type', '$.response.usage']) END AS f
        FROM control_events
        WHERE direction = 'server' AND type = 'response.done' AND response_id IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY session_id, response_id ORDER BY seq) = 1
    )
),
joined AS (
    SELECT coalesce(c.session_id, d.session_id) AS session_id, coalesce(c.response_id, d.response_id) AS response_id,
           c.seq AS created_seq, c.mono_ns AS created_mono, coalesce(c.ts, d.ts) AS ts,
           coalesce(c.out_of_band, false) AS out_of_band, coalesce(c.seq, d.seq) AS at_seq,
           d.seq AS done_seq, d.status, d.reason, d.code, d.etype, d.usage
    FROM created c FULL OUTER JOIN done d ON c.session_id = d.session_id AND c.response_id = d.response_id
),
items AS (
    SELECT session_id, response_id,
           arg_min(first_mono, first_seq) AS first_mono,
           min(audio_seq) AS audio_seq,
           arg_min(audio_mono, audio_seq) FILTER (WHERE audio_seq IS NOT NULL) AS audio_mono,
           sum(audio_bytes) FILTER (WHERE audio_seq IS NOT NULL) AS audio_bytes
    FROM voice_items WHERE response_id IS NOT NULL GROUP BY ALL
),
playback AS (  -- WebRTC/SIP: audio travels on the media track, the server says when it starts playing
    SELECT session_id, response_id, arg_min(mono_ns, seq) AS playback_mono FROM control_events
    WHERE direction = 'server' AND type IN ('output_audio_buffer.started', 'output_audio_buffer.audio_started')
        AND response_id IS NOT NULL
    GROUP BY ALL
),
stops AS (
    SELECT session_id, seq FROM control_events
    WHERE direction = 'server' AND type = 'input_audio_buffer.speech_stopped'
),
settings AS (SELECT * FROM voice_settings WHERE source = 'session'),
opens AS (SELECT * FROM voice_settings WHERE source = 'open')
SELECT
    j.session_id, j.response_id, j.created_seq, j.created_mono, j.done_seq, j.ts, j.out_of_band,
    j.status,
    CASE WHEN j.status IN ('incomplete', 'cancelled') THEN CASE WHEN json_type(j.reason) = 'VARCHAR' THEN j.reason ->> '$' END
         WHEN j.status = 'completed' THEN NULL
         WHEN j.status = 'failed' THEN coalesce(CASE WHEN json_type(j.code) NOT IN ('NULL') THEN j.code ->> '$' END,
                                               CASE WHEN json_type(j.etype) NOT IN ('NULL') THEN j.etype ->> '$' END)
         ELSE j.status END AS detail,
    CASE WHEN json_type(j.usage) = 'OBJECT' THEN j.usage END AS usage,
    (SELECT count(*) FROM stops s WHERE s.session_id = j.session_id AND s.seq < j.at_seq) AS turn,
    coalesce(st.model, op.model) AS model,
    coalesce(st.bytes_per_ms, 48) AS bytes_per_ms,
    i.first_mono, i.audio_seq, i.audio_mono,
    CASE WHEN j.created_seq IS NOT NULL THEN pb.playback_mono END AS playback_mono,
    coalesce(i.audio_bytes, 0) / coalesce(st.bytes_per_ms, 48) AS audio_ms
FROM joined j
LEFT JOIN items i ON i.session_id = j.session_id AND i.response_id = j.response_id
LEFT JOIN playback pb ON pb.session_id = j.session_id AND pb.response_id = j.response_id
ASOF LEFT JOIN settings st ON st.session_id = j.session_id AND j.at_seq > st.seq
ASOF LEFT JOIN opens op ON op.session_id = j.session_id AND j.at_seq > op.seq
