"""The SQL the PostgreSQL journal runs, named after what it does.

Every write that changes an event after its claim is guarded by `state = 'running' AND replica =
%(replica)s`: an outcome reported by a replica whose lease expired (its event taken over by another)
changes nothing, and an outcome recorded twice has the effect of once. Leases are timed by the
database's clock (`DB_NOW`), never a replica's, so replicas with skewed clocks agree on them.
"""

from __future__ import annotations

CHANNEL = "hub_webhooks_journal"
"""Where a replica says it queued something (`NOTIFY`), so the others' workers look at once."""
UNFINISHED = "state IN ('queued', 'running', 'failed', 'job_running')"
DB_NOW = "extract(epoch from clock_timestamp())"
NOT_PAUSED = "NOT EXISTS (SELECT 1 FROM endpoint_pauses AS z WHERE z.endpoint = {endpoint})"
"""Whether an endpoint runs: a pause, recorded by any replica's console, holds its events at every replica."""
WAITING_STATE = f"CASE WHEN {NOT_PAUSED.format(endpoint='events.endpoint')} THEN 'queued' ELSE 'paused' END"
"""The state of an event about to wait for its run: `paused` while its endpoint is."""
"""The database's clock, in seconds since the epoch: what leases are measured against."""

_CLAIMABLE = f"""e.state IN ('queued', 'failed')
  AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= %(now)s)
  AND {NOT_PAUSED.format(endpoint="e.endpoint")}
  AND (e.order_key IS NULL OR (
        e.id = (SELECT MIN(p.id) FROM events AS p WHERE p.order_key = e.order_key AND p.{UNFINISHED})
        AND NOT EXISTS (
            SELECT 1 FROM events AS r WHERE r.order_key = e.order_key AND r.state IN ('running', 'job_running'))))"""
"""Due, of an endpoint that is not paused, and the oldest unfinished event of its order key with none of that
key running (its handler, or the Hub Job its handler launched). The pause is checked here too, not only
by holding the waiting events: a delivery recorded at another replica while the pause committed may be
`queued` under it."""

CANDIDATES = f"""
SELECT e.id, e.endpoint FROM events AS e
WHERE {_CLAIMABLE} AND NOT (e.endpoint = ANY(%(full)s))
ORDER BY e.id LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
"""The oldest claimable events of the endpoints with room, locked: a replica scanning at the same time
skips them instead of claiming them too."""

_RUNNING = (
    "state = 'running', attempts = events.attempts + 1, started_at = %(now)s, next_attempt_at = NULL, "
    f"replica = %(replica)s, lease_until = {DB_NOW} + %(lease)s"
)
MARK_RUNNING = f"UPDATE events SET {_RUNNING} WHERE id = ANY(%(ids)s) AND state IN ('queued', 'failed') RETURNING *"
CLAIM_ONE = f"""
WITH claimed AS (
    UPDATE events SET {_RUNNING}
    WHERE id = (SELECT e.id FROM events AS e WHERE e.id = %(id)s AND {_CLAIMABLE} FOR UPDATE SKIP LOCKED)
      AND state IN ('queued', 'failed')
    RETURNING id
)
SELECT (SELECT id FROM claimed) AS id, me.order_key, EXISTS (
    SELECT 1 FROM events AS r WHERE r.order_key = me.order_key AND r.state = 'running' AND r.replica <> %(replica)s
) AS elsewhere
FROM events AS me WHERE me.id = %(id)s
"""
"""Claim one event if it may run now; when it may not, whether its repository runs at another replica
(what the worker asks next: `runs_elsewhere`), read in the same round trip."""
CLAIM_NEXT = f"""
UPDATE events SET {_RUNNING}
WHERE id = (SELECT e.id FROM events AS e WHERE e.order_key = %(key)s AND e.{UNFINISHED} ORDER BY e.id LIMIT 1)
  AND state IN ('queued', 'failed') AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
  AND {NOT_PAUSED.format(endpoint="events.endpoint")}
RETURNING id
"""
"""The head of an order key, if it waits and is due; a running head (here or elsewhere) claims nothing."""
RUNS_ELSEWHERE = "SELECT 1 FROM events WHERE order_key = %s AND state = 'running' AND replica <> %s LIMIT 1"
WAITS_UNCLAIMED = "SELECT 1 FROM events WHERE state = 'queued' AND received_at < %s LIMIT 1"

RECORD_NEW = """
SELECT event_id, event_state FROM hub_webhooks_record_new(%(endpoint)s, %(delivery_key)s, %(webhook_id)s,
    %(received_at)s, %(headers)s, %(query)s, %(scope)s, %(action)s, %(repo_name)s, %(repo_type)s, %(order_key)s,
    %(is_test)s, %(state)s, %(max_attempts)s, %(note)s, %(finished_at)s, %(body)s, %(notify)s, %(awaited_by)s)
"""
"""The usual delivery, whose key is new, in one round trip (see `schema.py`); no row for a redelivery."""
KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
"""Held by `record` until it commits: the events of one order key get their ids in commit order, so
the oldest unfinished id of a key is never one a later commit could still slip in before."""
TAKE_KEY = """
WITH k AS (
    INSERT INTO delivery_keys (endpoint, delivery_key) VALUES (%(endpoint)s, %(key)s)
    ON CONFLICT (endpoint, delivery_key) DO UPDATE SET original_id = delivery_keys.original_id
    RETURNING original_id
)
SELECT e.id, e.state, e.finished_at, e.error FROM k JOIN events AS e ON e.id = k.original_id
"""
"""The key's row, locked until commit (a second copy of the delivery at another replica waits here
and then sees the first), and the event a redelivery repeats, if any."""
INSERT_EVENT = f"""
INSERT INTO events (endpoint, delivery_key, webhook_id, received_at, headers, query, scope, action, repo_name,
    repo_type, order_key, is_test, state, attempts, max_attempts, original_id, note, finished_at, body, awaited_by)
VALUES (%(endpoint)s, %(delivery_key)s, %(webhook_id)s, %(received_at)s, %(headers)s, %(query)s, %(scope)s,
    %(action)s, %(repo_name)s, %(repo_type)s, %(order_key)s, %(is_test)s,
    CASE WHEN %(state)s::text <> 'queued' OR {NOT_PAUSED.format(endpoint="%(endpoint)s")}
        THEN %(state)s ELSE 'paused' END,
    0, %(max_attempts)s, %(original_id)s, %(note)s, %(finished_at)s, %(body)s, %(awaited_by)s)
RETURNING id, state
"""
SET_ORIGINAL = "UPDATE delivery_keys SET original_id = %s WHERE endpoint = %s AND delivery_key = %s"
REQUEUE = (
    f"UPDATE events SET state = {WAITING_STATE}, next_attempt_at = NULL, finished_at = NULL, lease_until = NULL, "
    "max_attempts = attempts + %s WHERE id = %s AND state NOT IN ('running', 'job_running')"
)
NOTIFY = "SELECT pg_notify(%s, %s)"

_MINE = "id = %(id)s AND state = 'running' AND replica = %(replica)s"
TELL_RECEIVER = (
    "SELECT id, CASE WHEN awaited_by <> %(replica)s "
    f"THEN pg_notify('{CHANNEL}', 'ended ' || id || ' ' || awaited_by) END AS told FROM ended"
)
"""After an attempt of an event whose request waits at another replica (`awaited_by`): tell that one
(`ended <id> <replica>`), so that the request answers with its outcome (see `leases.Background._heard`).
Nobody is told of the events of receive-only replicas (`awaited_by` NULL), which answered at once."""
FINISH = f"""
WITH ended AS (
    UPDATE events SET state = 'succeeded', result = %(result)s, error = NULL, handler_ms = %(handler_ms)s,
        finished_at = %(now)s, lease_until = NULL
    WHERE {_MINE} RETURNING id, awaited_by
) {TELL_RECEIVER}
"""
SKIP = f"""
WITH ended AS (
    UPDATE events SET state = 'skipped', note = %(reason)s, attempts = attempts - 1, finished_at = %(now)s,
        lease_until = NULL
    WHERE {_MINE} RETURNING id, awaited_by
) {TELL_RECEIVER}
"""
FAIL = f"""
WITH closed AS (
    INSERT INTO attempts (event_id, number, started_at, finished_at, outcome, detail, replica)
    SELECT id, attempts, COALESCE(started_at, %(now)s), %(now)s, 'failed', %(error)s, replica FROM events WHERE {_MINE}
    ON CONFLICT (event_id, number) DO NOTHING
), ended AS (
    UPDATE events SET state = %(state)s, error = %(error)s, handler_ms = %(handler_ms)s,
        next_attempt_at = %(retry_at)s, finished_at = %(finished_at)s, lease_until = NULL
    WHERE {_MINE} RETURNING id, awaited_by
) {TELL_RECEIVER}
"""

TAKE_OVER = f"""
WITH gone AS (
    SELECT id FROM events
    WHERE state = 'running' AND (replica = %(replica)s OR lease_until < {DB_NOW})
    FOR UPDATE SKIP LOCKED
), closed AS (
    INSERT INTO attempts (event_id, number, started_at, finished_at, outcome, detail, replica)
    SELECT e.id, e.attempts, COALESCE(e.started_at, %(now)s), %(now)s, 'interrupted',
        CASE WHEN e.replica = %(replica)s THEN 'the app stopped while this attempt ran'
             ELSE 'replica ' || COALESCE(e.replica, '?') || ' stopped renewing its lease while this attempt ran' END,
        e.replica
    FROM events AS e JOIN gone USING (id)
    ON CONFLICT (event_id, number) DO NOTHING
)
UPDATE events AS e SET
    state = CASE WHEN e.attempts >= e.max_attempts THEN 'dead' ELSE {WAITING_STATE.replace("events.", "e.")} END,
    finished_at = CASE WHEN e.attempts >= e.max_attempts THEN %(now)s END,
    error = CASE WHEN e.attempts >= e.max_attempts THEN %(stopped)s ELSE e.error END,
    lease_until = NULL
FROM gone WHERE e.id = gone.id
RETURNING e.id, e.state, e.replica
"""
"""The events a replica left running: its own from before a restart (`replica` is this one), or any
whose lease expired (their replica died). Their attempt is closed as interrupted and counts: one cut
short on its last attempt is dead (`STOPPED_ON_LAST_ATTEMPT`), as the SQLite journal's recovery does."""
RENEW_LEASES = (
    f"UPDATE events SET lease_until = {DB_NOW} + %(lease)s "
    "WHERE state = 'running' AND replica = %(replica)s AND id = ANY(%(ids)s)"
)
"""Only the events whose claim this replica saw succeed (`running_here`): a claim committed while its answer
was lost (the connection cut) runs nowhere, and its lease must lapse for a replica to take it over."""

LAST_ATTEMPT = (
    "SELECT id AS event_id, attempts AS number, COALESCE(started_at, finished_at, received_at) AS started_at, "
    "CASE state WHEN 'succeeded' THEN finished_at END AS finished_at, state AS outcome, "
    "CASE state WHEN 'running' THEN NULL ELSE result END AS detail "
    "FROM events WHERE state IN ('running', 'succeeded', 'job_running') AND attempts > 0"
)
ATTEMPTS = (
    "SELECT event_id, number, started_at, finished_at, outcome, detail FROM attempts WHERE event_id = %(id)s "
    f"UNION ALL {LAST_ATTEMPT} AND id = %(id)s ORDER BY number"
)
REPLAYED = "UPDATE events SET replays = replays + 1 WHERE id = %s AND state NOT IN ('running', 'job_running')"
"""A replay asked for by an operator: the event's next run is a new generation, with a Hub Job of its own."""
KEEP_LAST_ATTEMPT = (
    "INSERT INTO attempts (event_id, number, started_at, finished_at, outcome, detail, replica) "
    "SELECT id, attempts, COALESCE(started_at, finished_at, received_at), finished_at, state, result, replica "
    "FROM events WHERE id = %s AND state = 'succeeded' AND attempts > 0 "
    "ON CONFLICT (event_id, number) DO UPDATE SET outcome = EXCLUDED.outcome, detail = EXCLUDED.detail"
)
"""Move a success into `attempts` before the event runs again, so the history keeps it."""
NEXT_DUE = f"SELECT MIN(next_attempt_at) FROM events WHERE {UNFINISHED} AND state = 'failed'"
PRUNE = """
DELETE FROM events WHERE state IN ('succeeded', 'skipped', 'duplicate') AND (received_at < %(older_than)s
    OR id < (SELECT MIN(id) FROM (SELECT id FROM events ORDER BY id DESC LIMIT %(keep)s) AS newest))
"""
SET_ACK_MS = (
    "UPDATE events SET ack_ms = u.ack_ms FROM unnest(%s::bigint[], %s::float8[]) AS u(id, ack_ms) "
    "WHERE events.id = u.id"
)
STATS_COUNTS = "SELECT endpoint, state, COUNT(*) FROM events WHERE received_at >= %s GROUP BY endpoint, state"
STATS_TIMES = (
    "SELECT ack_ms, handler_ms FROM events WHERE received_at >= %s AND (ack_ms IS NOT NULL OR handler_ms IS NOT NULL)"
)
JOURNAL_BYTES = (
    "SELECT COALESCE(SUM(pg_total_relation_size(c)), 0) FROM "
    "unnest(ARRAY['events', 'attempts', 'delivery_keys']::regclass[]) AS c"
)
