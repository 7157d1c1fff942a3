"""`jobs/train.py` and `jobs/evaluate.py`, the scripts the example handlers launch on Hub Jobs, run as a
job runs them: a separate process with only HF_ENDPOINT and HF_TOKEN, here against the local fake Hub.

A dataset whose target is an exact linear function of its features must give back those weights;
what it pushes must be a model repo a person can read; data it cannot train on must end the process
with a message saying what to change, and push nothing. The evaluation must score a pull request's
model against main's on the dataset the card names, and push nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakehub import FakeHub

JOBS = Path(__file__).resolve().parent.parent / "jobs"


@pytest.fixture(scope="module")
def token(hub: FakeHub) -> str:
    return hub.add_user("trainer", orgs=["acme"])


def run_script(
    hub: FakeHub, token: str, tmp_path: Path, *args: str, script: str = "train.py", **env: str
) -> subprocess.CompletedProcess[str]:
    """The script as a job runs it: its own process, its own cache, the token from the environment only."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k != "EPOCHS"}
    return subprocess.run(
        [sys.executable, str(JOBS / script), *args],
        env={**clean, **hub.client_env(token=token), "HF_HOME": str(tmp_path / "hf_home"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def houses_csv(rows: int = 40) -> str:
    """price = 3 * rooms + 0.5 * area - 7, exactly; `city` is text and must be left out."""
    lines = ["rooms,city,area,price"]
    for i in range(rows):
        rooms, area = 1 + i % 6, 20 + (i * 37) % 90
        lines.append(f"{rooms},town{i % 3},{area},{3 * rooms + 0.5 * area - 7}")
    return "\n".join(lines) + "\n"


def test_it_learns_the_weights_and_pushes_a_readable_model(hub: FakeHub, token: str, tmp_path: Path) -> None:
    first = hub.add_repo("acme/houses", "dataset", files={"README.md": "# houses", "data/houses.csv": houses_csv()})
    hub.commit("acme/houses", {"data/houses.csv": "rooms,area,price\n1,1,1\n"}, "Replace the data", repo_type="dataset")

    done = run_script(
        hub,
        token,
        tmp_path,
        "--dataset",
        "acme/houses",
        "--revision",
        first,
        "--model",
        "acme/houses-model",
        EPOCHS="2000",
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"training on 40 rows of acme/houses/data/houses.csv at {first}"
    assert any(line.startswith("epoch 2000/2000: train mse") for line in lines)
    assert lines[-1].startswith("RESULT ")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    repo = hub.repo("acme/houses-model")
    assert result["model"] == "acme/houses-model" and result["commit"] == repo.head
    assert result["validation_rows"] == 8 and result["train_rows"] == 32 and result["epochs"] == 2000
    assert result["validation_rmse"] < 1e-3

    files = hub.files_at("acme/houses-model")
    model = json.loads(files["model.json"])
    assert model["features"] == ["rooms", "area"] and model["target"] == "price"
    assert model["coefficients"] == {"rooms": pytest.approx(3, abs=1e-3), "area": pytest.approx(0.5, abs=1e-4)}
    assert model["intercept"] == pytest.approx(-7, abs=1e-2)
    card = files["README.md"]
    assert card.startswith("---\ndatasets:\n- acme/houses\n")
    assert f"(`data/houses.csv` at `{first}`)" in card  # the commit that was asked for, not main's latest
    assert repo.commits[repo.head].title == f"Train on acme/houses@{first[:7]}"
    assert repo.commits[repo.head].author == "trainer"


def test_new_data_is_a_new_commit_of_the_same_model_repo(hub: FakeHub, token: str, tmp_path: Path) -> None:
    hub.add_repo("acme/again", "dataset", files={"a.csv": houses_csv(10)})
    assert run_script(hub, token, tmp_path, "--dataset", "acme/again", EPOCHS="5").returncode == 0
    hub.commit("acme/again", {"a.csv": houses_csv(20)}, "More rows", repo_type="dataset")
    done = run_script(hub, token, tmp_path, "--dataset", "acme/again", EPOCHS="5")
    assert done.returncode == 0, done.stderr
    repo = hub.repo("acme/again-linear")  # the default name
    assert [c.title for c in repo.commits.values()].count("Train on acme/again@main") == 2
    assert json.loads(hub.files_at("acme/again-linear")["model.json"])["metrics"]["train_rows"] == 16


@pytest.mark.parametrize(
    ("csv", "args", "message"),
    [
        ("a,b\n1,x\n2,y\n", [], "cannot train: the target column 'b' is not numeric"),
        ("name,y\nx,1\ny,2\nz,3\nw,4\nv,5\n", [], "cannot train: no numeric column besides 'y' to learn from"),
        ("a,b\n1,2\n3,4\n", [], "cannot train: 2 complete row(s): at least 5 are needed"),
        ("a,b\n1,2\n", ["--target", "price"], "cannot train: no column 'price' in the CSV (columns: a, b)"),
        ("", [], "cannot train: the CSV has no header or no rows"),
    ],
)
def test_data_it_cannot_train_on_is_refused_with_the_fix_and_nothing_is_pushed(
    hub: FakeHub, token: str, tmp_path: Path, csv: str, args: list[str], message: str
) -> None:
    name = f"acme/bad-{abs(hash((csv, tuple(args)))) % 10**8}"
    hub.add_repo(name, "dataset", files={"data.csv": csv})
    done = run_script(hub, token, tmp_path, "--dataset", name, *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in done.stderr
    assert not hub.has_repo(f"{name}-linear")


def test_a_dataset_without_a_csv_says_so(hub: FakeHub, token: str, tmp_path: Path) -> None:
    hub.add_repo("acme/no-csv", "dataset", files={"data.parquet": b"PAR1"})
    done = run_script(hub, token, tmp_path, "--dataset", "acme/no-csv")
    assert done.returncode == 2
    assert "cannot train: no .csv file in acme/no-csv at main: pass --file" in done.stderr


def test_without_write_access_the_job_fails_loudly(hub: FakeHub, tmp_path: Path) -> None:
    """A token that can read the data but not create the model repo: a failed job (non-zero), which the
    handler's report then shows with the log tail, never a silent success."""
    reader = hub.add_user("reader", role="read")
    hub.add_repo("acme/read-only", "dataset", files={"a.csv": houses_csv(10)})
    done = run_script(hub, reader, tmp_path, "--dataset", "acme/read-only", EPOCHS="5")
    assert done.returncode == 1
    assert "RESULT" not in done.stdout
    assert not hub.has_repo("acme/read-only-linear")


# --- evaluate.py ---------------------------------------------------------------------------------


def result_of(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT ")
    return json.loads(last.removeprefix("RESULT "))


def test_a_pull_request_is_scored_against_main_on_the_cards_dataset(hub: FakeHub, token: str, tmp_path: Path) -> None:
    hub.add_repo("acme/flats", "dataset", files={"flats.csv": houses_csv()})
    assert run_script(hub, token, tmp_path, "--dataset", "acme/flats", EPOCHS="2000").returncode == 0
    good = json.loads(hub.files_at("acme/flats-linear")["model.json"])
    worse = {**good, "intercept": good["intercept"] + 2.0}  # every prediction 2 too high: RMSE 2
    num = hub.add_discussion("acme/flats-linear", "Shift the intercept", author="trainer", pull_request=True)
    hub.commit("acme/flats-linear", {"model.json": json.dumps(worse)}, "Worse", revision=f"refs/pr/{num}")
    before = hub.repo("acme/flats-linear").head

    done = run_script(
        hub, token, tmp_path, "--model", "acme/flats-linear", "--revision", f"refs/pr/{num}", script="evaluate.py"
    )

    result = result_of(done)
    assert result["dataset"] == "acme/flats" and result["rows"] == 40
    assert result["rmse"] == pytest.approx(2.0, abs=1e-3)
    assert result["main_rmse"] == pytest.approx(0.0, abs=1e-3)
    assert hub.repo("acme/flats-linear").head == before  # pushed nothing


def test_a_pull_request_without_a_model_or_a_dataset_is_refused(hub: FakeHub, token: str, tmp_path: Path) -> None:
    hub.add_repo("acme/bare", files={"README.md": "# no metadata"})
    num = hub.add_discussion("acme/bare", "Docs", author="trainer", pull_request=True)
    done = run_script(
        hub, token, tmp_path, "--model", "acme/bare", "--revision", f"refs/pr/{num}", script="evaluate.py"
    )
    assert done.returncode == 2
    assert f"cannot evaluate: the pull request (refs/pr/{num}) has no model.json" in done.stderr
    model = {"features": ["a"], "target": "b", "coefficients": {"a": 1.0}, "intercept": 0.0}
    hub.commit("acme/bare", {"model.json": json.dumps(model)}, "Model", revision=f"refs/pr/{num}")
    done = run_script(
        hub, token, tmp_path, "--model", "acme/bare", "--revision", f"refs/pr/{num}", script="evaluate.py"
    )
    assert done.returncode == 2
    assert (
        "cannot evaluate: the model card names no dataset (`datasets:` in its metadata): pass --dataset" in done.stderr
    )
    hub.add_repo("acme/ab", "dataset", files={"ab.csv": "a,b\n1,1\n2,2\n"})
    done = run_script(
        hub,
        token,
        tmp_path,
        "--model",
        "acme/bare",
        "--revision",
        f"refs/pr/{num}",
        "--dataset",
        "acme/ab",
        script="evaluate.py",
    )
    assert result_of(done) == {"dataset": "acme/ab", "rows": 2, "rmse": 0.0, "main_rmse": None}
