"""Operating the receiver: `/metrics` for Prometheus, and alerts that reach the owner.

`monitoring.py` is what the receiver holds (`Monitoring`); `metrics.py` the series,
`alert_rules.py` the conditions, `alerts.py` the checking and sending, `alert_targets.py` the
webhook and the Space's discussions, `alert_store.py` what is remembered across restarts.
The layer sits beside the worker: it reads the journal and the Hub, and the receiver wires the
worker's hook to it.
"""

from .alerts import AlertsView, TargetView
from .monitoring import Monitoring

__all__ = ["AlertsView", "Monitoring", "TargetView"]
