"""The journal on PostgreSQL, for several receivers and workers sharing one database (`DATABASE_URL`).

`journal.py` holds the domain operations, `statements.py` their SQL, `schema.py` the tables and
their migration under an advisory lock, `leases.py` the heartbeat (leases renewed, dead replicas'
events taken over), the listener and the database's health, `connection.py` the URL (never shown
with its password) and its errors as 503s.
"""

from .connection import DatabaseTarget, is_postgres_url
from .journal import PostgresJournal, default_replica_id

__all__ = ["DatabaseTarget", "PostgresJournal", "default_replica_id", "is_postgres_url"]
