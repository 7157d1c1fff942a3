"""The SQL the SQLite journal runs more than once, named after what it does.

Every statement that changes an event after its claim can run twice with the same effect (its
`state` guards make a second run change nothing): a group whose commit failed runs them again.
"""

from __future__ import annotations

# Each condition repeats `state IN ('queued', 'running', 'failed')`: SQLite only uses a partial
# index when the query restates the index's own condition, and without it every claim would scan
# every event (bodies included) ever recorded.
UNFINISHED = "state IN ('queued', 'running', 'failed', 'job_running')"
_CLAIMABLE_WHERE = f"""e.{UNFINISHED} AND e.state IN ('queued', 'failed')
  AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= :now)
  AND (e.order_key IS NULL OR (
        e.id = (SELECT MIN(p.id) FROM events AS p WHERE p.order_key = e.order_key AND p.{UNFINISHED})
        AND NOT EXISTS (
            SELECT 1 FROM events AS r WHERE r.order_key = e.order_key AND r.{UNFINISHED}
            AND r.state IN ('running', 'job_running'))))"""
"""Due, and the oldest unfinished event of its order key with none of that key running (its handler, or
the Hub Job its handler launched: a repository's lane stays taken while its job runs)."""
CLAIMABLE = f"""
SELECT id FROM events AS e INDEXED BY events_unfinished
WHERE {_CLAIMABLE_WHERE}
ORDER BY e.id LIMIT :limit
"""
CLAIMABLE_ELSEWHERE = f"""
SELECT id, endpoint FROM events AS e INDEXED BY events_unfinished
WHERE {_CLAIMABLE_WHERE}
  AND e.endpoint NOT IN (SELECT value FROM json_each(:full))
ORDER BY e.id LIMIT :limit
"""
"""`CLAIMABLE` with each event's endpoint, leaving out the endpoints in the JSON list `:full`."""
CLAIMABLE_EVENT = f"""
SELECT 1 FROM events AS e
WHERE e.id = :id AND {_CLAIMABLE_WHERE}
"""
"""`CLAIMABLE` for one event: whether it may be claimed now."""
REQUEUE = (
    "UPDATE events SET state = 'queued', next_attempt_at = NULL, finished_at = NULL, "
    "max_attempts = attempts + ? WHERE id = ? AND state NOT IN ('running', 'job_running')"
)
"""Run an event again, with a fresh allowance of attempts (a redelivery of a failure, a replay)."""
NEXT_DUE = (
    f"SELECT MIN(next_attempt_at) FROM events INDEXED BY events_unfinished WHERE {UNFINISHED} AND state = 'failed'"
)
MARK_RUNNING = (
    "UPDATE events SET state = 'running', attempts = attempts + 1, started_at = ?, next_attempt_at = NULL "
    "WHERE id = ? AND state != 'running'"
)
LANE_HEAD = f"SELECT id, state, next_attempt_at FROM events WHERE order_key = ? AND {UNFINISHED} ORDER BY id LIMIT 1"
LAST_ATTEMPT = (
    "SELECT id AS event_id, attempts AS number, COALESCE(started_at, finished_at, received_at) AS started_at, "
    "CASE state WHEN 'succeeded' THEN finished_at END AS finished_at, state AS outcome, "
    "CASE state WHEN 'running' THEN NULL ELSE result END AS detail "
    "FROM events WHERE state IN ('running', 'succeeded', 'job_running') AND attempts > 0"
)
"""The attempt an event's own row holds: the one running (its handler, or the job it launched), or the
one that succeeded. A success is the common end of an event, and keeping it on the row spares a write
to `attempts` per event."""
REPLAYED = "UPDATE events SET replays = replays + 1 WHERE id = ? AND state NOT IN ('running', 'job_running')"
"""A replay asked for by an operator (not a redelivery): the event's next run is a new generation, whose
Hub Job is a new one (its exactly-once label changes with it; see `lib/worker/launch.py`)."""
KEEP_LAST_ATTEMPT = f"INSERT OR REPLACE INTO attempts {LAST_ATTEMPT} AND state = 'succeeded' AND id = ?"
"""Move a success into `attempts` before the event runs again, so the history keeps it."""
CLOSE_RUNNING_ATTEMPTS = (
    "INSERT OR REPLACE INTO attempts (event_id, number, started_at, finished_at, outcome, detail) "
    "SELECT id, attempts, COALESCE(started_at, :now), :now, :outcome, :detail FROM events "
    f"WHERE {UNFINISHED} AND state = 'running'"
)
"""The rows of the attempts running now, ended as `:outcome` (at recovery: all of them)."""
CLOSE_ATTEMPT = CLOSE_RUNNING_ATTEMPTS + " AND id = :id"
"""The row of one attempt that just ended. It must run before the event leaves `running`, and
like every write made after an event was claimed it can run twice with the same effect (see
`_carry`): the `state` guards make a second run change nothing."""
INSERT_EVENT = (
    "INSERT INTO events (id, endpoint, delivery_key, webhook_id, received_at, headers, query, scope, "
    "action, repo_name, repo_type, order_key, is_test, state, attempts, max_attempts, original_id, note, "
    "finished_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
FINISH = (
    "UPDATE events SET state = 'succeeded', result = ?, error = NULL, handler_ms = ?, finished_at = ? "
    "WHERE id = ? AND state = 'running'"
)
SKIP = (
    "UPDATE events SET state = 'skipped', note = ?, attempts = attempts - 1, finished_at = ? "
    "WHERE id = ? AND state = 'running'"
)
"""A claimed event that must not run after all: its attempt undone."""
FAIL = (
    "UPDATE events SET state = ?, error = ?, handler_ms = ?, next_attempt_at = ?, finished_at = ? "
    "WHERE id = ? AND state = 'running'"
)
"""After `CLOSE_ATTEMPT`: `failed` with the time of its retry, or `dead`."""
LEFT_DEAD_AT_RECOVERY = "SELECT 1 FROM events WHERE id = ? AND state = 'dead' AND error = ?"
"""Whether an event is dead because the app stopped during its last attempt (with `STOPPED_ON_LAST_ATTEMPT`)."""
SET_ACK_MS = "UPDATE events SET ack_ms = ? WHERE id = ?"
ORIGINAL = """
SELECT id, state, finished_at FROM events WHERE id = COALESCE(
    (SELECT o.id FROM events AS o WHERE o.id = (
        SELECT CASE n.state WHEN 'duplicate' THEN n.original_id ELSE n.id END FROM events AS n
        WHERE n.endpoint = ?1 AND n.delivery_key = ?2 ORDER BY n.id DESC LIMIT 1)),
    (SELECT p.id FROM events AS p WHERE p.endpoint = ?1 AND p.delivery_key = ?2 AND p.state != 'duplicate'
     ORDER BY p.id DESC LIMIT 1))
"""
"""The event a delivery of `(endpoint, delivery_key)` repeats: the newest one of that key that is not a
duplicate. Found from the newest row of the key, one index step whatever the number of duplicates (a
redelivery storm): that row, or the original it names if it is a duplicate, since a duplicate always
names the newest non-duplicate of its key when it is written. Only when that original was pruned
(COALESCE evaluates its second argument only then) are the key's rows scanned back past duplicates."""
