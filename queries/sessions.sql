-- sessions: one row per recorded session (one client connection through the proxy).
-- `day` is the UTC day the session started (its archive partition).
-- Answers: "which sessions are there, how long, with which model, how busy, and how did they end?"
-- `model` is the last session.created/updated's, else proxy.open's `model=`; `closed` is false for a
-- session still open (or cut off by a crash) — it has no proxy.close record.
-- A proxy run's own session of `proxy.refused` records is not a session here (see `refused`).
-- Relies on: events.session_id, seq, ts, direction, type, size; session_config; refused.
WITH per_session AS (
    SELECT
        session_id,
        min(ts) AS started_at,
        max(ts) AS ended_at,
        count(*) AS events,
        count(*) FILTER (WHERE direction = 'client') AS client_events,
        count(*) FILTER (WHERE direction = 'server') AS server_events,
        sum(size) AS bytes,
        count(*) FILTER (WHERE direction = 'client' AND type = 'response.create') AS requests,
        count(*) FILTER (WHERE direction = 'server' AND type = 'response.created') AS responses,
        count(*) FILTER (WHERE direction = 'server' AND type = 'error') AS errors,
        bool_or(type = 'proxy.close') AS closed,
        bool_or(type = 'proxy.upstream_rejected') AS upstream_rejected
    FROM events
    WHERE session_id NOT IN (SELECT session_id FROM refused)
    GROUP BY session_id
),
models AS (
    SELECT session_id,
           arg_max(model, seq) FILTER (WHERE source = 'session') AS session_model,
           arg_min(model, seq) FILTER (WHERE source = 'open') AS open_model
    FROM session_config
    GROUP BY session_id
)
SELECT
    p.session_id, CAST(timezone('UTC', p.started_at) AS DATE) AS day, p.started_at, p.ended_at,
    epoch_ms(p.ended_at) / 1000 - epoch_ms(p.started_at) / 1000 AS duration_s,
    coalesce(m.session_model, m.open_model) AS model,
    p.events, p.client_events, p.server_events, p.bytes, p.requests, p.responses, p.errors,
    p.closed, p.upstream_rejected
FROM per_session p
LEFT JOIN models m ON m.session_id = p.session_id
