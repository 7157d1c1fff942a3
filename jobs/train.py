# /// script
# requires-python = ">=3.10"
# dependencies = ["huggingface_hub>=1.0", "numpy>=1.26"]
# ///
"""Trains a small linear model on a CSV file of a Hub dataset and pushes it to a model repo.

`handlers/train_on_new_data.py` launches this script on Hugging Face Jobs (`run_uv_job`) each time
the dataset's main branch moves; it runs just as well on your machine:

    HF_TOKEN=hf_... uv run jobs/train.py --dataset you/house-prices --model you/house-prices-linear

What it does, so you can see where your own training goes:
1. downloads one CSV of the dataset at the commit that triggered it (`--revision`),
2. fits a linear regression of `--target` (default: the last column) on the other numeric columns by
   gradient descent (`--epochs`, default `$EPOCHS` or 300), keeping every fifth row for validation,
3. pushes `model.json` (weights, feature scaling, metrics) and a model card to `--model`, created if
   needed, in one commit that names the dataset commit it was trained on,
4. prints `RESULT {...}` as its last line: the metrics, read back from the job's logs by the handler's
   report (`on_job_end`).

Replace step 2 with your own model (and add its packages to `dependencies` above); keep the
`RESULT` line if you want the metrics in the discussion the handler opens. The job gets `HF_TOKEN`
as a secret: the handler never puts it in plain environment variables.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
from huggingface_hub import CommitOperationAdd, HfApi


class TrainingError(Exception):
    """The data cannot be trained on as asked: the message says what to change. Exit code 2."""


@dataclass(frozen=True)
class Table:
    """The numeric columns of a CSV: features `x` (rows x columns) and the target `y`."""

    features: list[str]
    target: str
    x: np.ndarray
    y: np.ndarray


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="the dataset repo to train on, owner/name")
    parser.add_argument("--revision", default="main", help="the dataset commit (or branch) to read")
    parser.add_argument("--file", help="the CSV file in the dataset (default: the first .csv found)")
    parser.add_argument("--target", help="the column to predict (default: the last column)")
    parser.add_argument("--model", help="the model repo to push to (default: <dataset>-linear)")
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("EPOCHS", "300")))
    parser.add_argument("--learning-rate", type=float, default=0.1)
    return parser.parse_args(argv)


def read_table(text: str, target: str | None) -> Table:
    """The numeric columns of a CSV; rows with an empty or non-numeric cell in them are left out."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    rows = list(reader)
    if not columns or not rows:
        raise TrainingError("the CSV has no header or no rows")
    target = target or columns[-1]
    if target not in columns:
        raise TrainingError(f"no column {target!r} in the CSV (columns: {', '.join(columns)})")

    def numeric(column: str) -> bool:
        return all(_number(row[column]) is not None for row in rows if (row[column] or "").strip())

    features = [column for column in columns if column != target and numeric(column)]
    if not numeric(target):
        raise TrainingError(f"the target column {target!r} is not numeric")
    if not features:
        raise TrainingError(f"no numeric column besides {target!r} to learn from")
    wanted = [*features, target]
    values = [[_number(row[c]) for c in wanted] for row in rows]
    complete = np.array([v for v in values if None not in v], dtype=float)
    if len(complete) < 5:
        raise TrainingError(f"{len(complete)} complete row(s): at least 5 are needed (4 to train, 1 to validate)")
    return Table(features, target, complete[:, :-1], complete[:, -1])


def _number(cell: str | None) -> float | None:
    try:
        value = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def train(table: Table, *, epochs: int, learning_rate: float) -> dict:
    """Linear regression by full-batch gradient descent on standardised features.

    Every fifth row is held out for validation, so the split is the same on every run of one file.
    Returns the model as plain JSON-ready data: weights in the original units, and the metrics.
    """
    held_out = np.arange(len(table.y)) % 5 == 4
    x_train, y_train = table.x[~held_out], table.y[~held_out]
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column learns nothing, and must not divide by zero
    y_mean = y_train.mean()
    z = (x_train - mean) / scale
    weights, bias = np.zeros(z.shape[1]), 0.0
    for epoch in range(1, epochs + 1):
        error = z @ weights + bias - (y_train - y_mean)
        weights -= learning_rate * (z.T @ error) / len(error)
        bias -= learning_rate * error.mean()
        if epoch == 1 or epoch % max(1, epochs // 5) == 0 or epoch == epochs:
            print(f"epoch {epoch}/{epochs}: train mse {float(np.mean(error**2)):.6g}", flush=True)

    # Back to the original units: y = x @ coef + intercept.
    coef = weights / scale
    intercept = float(y_mean + bias - mean @ coef)

    def rmse(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.sqrt(np.mean((x @ coef + intercept - y) ** 2)))

    return {
        "kind": "linear-regression",
        "features": table.features,
        "target": table.target,
        "coefficients": dict(zip(table.features, map(float, coef), strict=True)),
        "intercept": intercept,
        "metrics": {
            "train_rmse": rmse(x_train, y_train),
            "validation_rmse": rmse(table.x[held_out], table.y[held_out]),
            "train_rows": int((~held_out).sum()),
            "validation_rows": int(held_out.sum()),
            "epochs": epochs,
        },
    }


def model_card(model: dict, *, dataset: str, revision: str, file: str) -> str:
    metrics = model["metrics"]
    return (
        "---\n"
        f"datasets:\n- {dataset}\n"
        "tags:\n- linear-regression\n- trained-by-webhook\n"
        "---\n"
        f"# Linear model of `{model['target']}`\n\n"
        f"Trained on [{dataset}](https://huggingface.co/datasets/{dataset}) (`{file}` at `{revision}`) by "
        "`jobs/train.py`, launched on Hugging Face Jobs by a webhook when the dataset changed.\n\n"
        f"| metric | value |\n|---|---|\n"
        + "".join(f"| {name} | {value:.6g} |\n" for name, value in metrics.items())
        + f"\nFeatures: {', '.join(f'`{f}`' for f in model['features'])}. Weights in `model.json`.\n"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api = HfApi()  # HF_TOKEN (a secret of the job) and HF_ENDPOINT come from the environment
    files = api.list_repo_files(args.dataset, repo_type="dataset", revision=args.revision)
    file = args.file or next((f for f in files if f.endswith(".csv")), None)
    if file is None:
        raise TrainingError(f"no .csv file in {args.dataset} at {args.revision}: pass --file")
    path = api.hf_hub_download(args.dataset, file, repo_type="dataset", revision=args.revision)
    with open(path, encoding="utf-8") as handle:
        table = read_table(handle.read(), args.target)
    print(f"training on {len(table.y)} rows of {args.dataset}/{file} at {args.revision}", flush=True)

    model = train(table, epochs=args.epochs, learning_rate=args.learning_rate)
    repo = args.model or f"{args.dataset}-linear"
    api.create_repo(repo, exist_ok=True)
    commit = api.create_commit(
        repo,
        operations=[
            CommitOperationAdd("model.json", json.dumps(model, indent=2).encode()),
            CommitOperationAdd(
                "README.md", model_card(model, dataset=args.dataset, revision=args.revision, file=file).encode()
            ),
        ],
        commit_message=f"Train on {args.dataset}@{args.revision[:7]}",
    )
    print("RESULT " + json.dumps({"model": repo, "commit": commit.oid, **model["metrics"]}), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TrainingError as exc:
        print(f"cannot train: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
