-- voice_settings: the session settings the voice reports need, one row per server session.created /
-- session.updated and per proxy.open (as session_config), ASOF-joined on seq ("in force at event N").
-- Answers: "which model, output audio format and transcription model were in force at event N?"
-- `bytes_per_ms` is the output audio's: 8 for G.711 (audio/pcmu, audio/pcma, beta g711_*), else 48 (PCM16 at
-- 24 kHz); a session event without `audio.output.format` falls back to the beta `output_audio_format`.
-- The transcription model is `audio.input.transcription.model` (GA), else `input_audio_transcription.model`.
-- Relies on: control_events.direction, type, seq, payload ($.session ...); session_config (proxy.open model).
WITH parsed AS (
    SELECT session_id, seq, f[1] AS session
    FROM (SELECT *, json_extract(payload, ['$.session']) AS f FROM control_events
          WHERE direction = 'server' AND type IN ('session.created', 'session.updated') AND json_valid(payload))
)
SELECT
    session_id, seq, 'session' AS source,
    CASE WHEN json_type(session, '$.model') = 'VARCHAR' THEN session ->> '$.model' END AS model,
    CASE WHEN (CASE WHEN json_type(session, '$.audio.output') = 'OBJECT'
                         AND json_extract(session, '$.audio.output.format') IS NOT NULL
                    THEN CASE WHEN json_type(session, '$.audio.output.format') = 'OBJECT'
                              THEN session ->> '$.audio.output.format.type' END
                    ELSE session ->> '$.output_audio_format' END)
              IN ('audio/pcmu', 'audio/pcma', 'g711_ulaw', 'g711_alaw') THEN 8 ELSE 48 END AS bytes_per_ms,
    CASE WHEN json_type(session, '$.audio.input.transcription') = 'OBJECT'
              AND json_keys(json_extract(session, '$.audio.input.transcription')) <> []
         THEN CASE WHEN json_type(session, '$.audio.input.transcription.model') = 'VARCHAR'
                   THEN session ->> '$.audio.input.transcription.model' END
         ELSE CASE WHEN json_type(session, '$.input_audio_transcription.model') = 'VARCHAR'
                   THEN session ->> '$.input_audio_transcription.model' END
    END AS transcription_model
FROM parsed
UNION ALL
SELECT session_id, seq, 'open', model, NULL, NULL FROM session_config WHERE source = 'open'
