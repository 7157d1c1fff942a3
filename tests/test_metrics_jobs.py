"""The Hub Jobs series of `/metrics`, read from a real journal's `job_stats` and parsed with
`prometheus_client`'s own parser: what handlers launched, what runs now, and the job-hours billed."""

from __future__ import annotations

from pathlib import Path

import pytest
from journal_helpers import a_job, delivery, record
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lib.journal import SQLiteJournal
from lib.ops.metrics import PREFIX, ScrapeSources, StateCollector


def parse(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.anyio
async def test_job_series_say_what_the_journal_holds(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    try:
        running = (await record(journal, delivery())).event
        await journal.record_job(a_job(running.id, label="running", stage="RUNNING"))
        for n, (stage, seconds) in enumerate([("COMPLETED", 1800.0), ("COMPLETED", 3600.0), ("ERROR", 600.0)]):
            event = (await record(journal, delivery(endpoint="/webhooks/b"))).event
            launched = a_job(event.id, label=f"ended-{n}", stage=stage)
            started = launched.launched_at
            await journal.record_job(launched.evolve(started_at=started, finished_at=started + seconds))
        await journal.durable()

        collector = StateCollector(
            ScrapeSources(journal=lambda: journal, endpoints=lambda: [], load=lambda: {}, alerts=lambda: []),
            max_age=0,
        )
        await collector.refresh()
        registry = CollectorRegistry()
        registry.register(collector)
        samples = parse(registry)
    finally:
        await journal.close()

    launched = {
        dict(labels)["stage"]: v for (name, labels), v in samples.items() if name == f"{PREFIX}_jobs_launched_24h"
    }
    assert launched == {"RUNNING": 1, "COMPLETED": 2, "ERROR": 1}
    assert samples[(f"{PREFIX}_jobs_running", ())] == 1
    assert samples[(f"{PREFIX}_job_hours_24h", ())] == pytest.approx(1.5 + 600 / 3600)
    quantiles = {
        dict(labels)["quantile"] for (name, labels), _ in samples.items() if name == f"{PREFIX}_job_duration_seconds"
    }
    assert quantiles == {"0.5", "0.95"}
    assert samples[(f"{PREFIX}_job_duration_seconds", (("quantile", "0.5"),))] == 1800.0
