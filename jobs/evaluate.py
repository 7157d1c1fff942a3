# /// script
# requires-python = ">=3.10"
# dependencies = ["huggingface_hub>=1.0", "numpy>=1.26"]
# ///
"""Evaluates the model of a pull request against the model on main, on the dataset it was trained on.

`handlers/evaluate_pr.py` launches this script on Hugging Face Jobs when a pull request is opened on a
model that `jobs/train.py` made (a `model.json` of a linear regression); it runs just as well locally:

    HF_TOKEN=hf_... uv run jobs/evaluate.py --model you/house-prices-linear --revision refs/pr/3

It reads `model.json` at the pull request's revision and on main, the dataset named in the model
card's metadata (or `--dataset`), scores both on the dataset's CSV (root mean squared error over
every complete row), and prints `RESULT {...}` as its last line for the handler's report to read.
Put your own benchmark in `score`. It pushes nothing: a review should not change the repo.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

import numpy as np
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.errors import EntryNotFoundError


class EvaluationError(Exception):
    """The pull request cannot be evaluated as asked: the message says why. Exit code 2."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the model repo, owner/name")
    parser.add_argument("--revision", required=True, help="the pull request's ref, e.g. refs/pr/3")
    parser.add_argument("--dataset", help="the dataset to score on (default: the card's `datasets`)")
    parser.add_argument("--file", help="the CSV file of the dataset (default: the first .csv found)")
    return parser.parse_args(argv)


def load_model(api: HfApi, repo: str, revision: str) -> dict | None:
    """`model.json` at `revision`, or None when that revision has none."""
    try:
        path = api.hf_hub_download(repo, "model.json", revision=revision)
    except EntryNotFoundError:
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def score(model: dict, rows: list[dict[str, str]]) -> tuple[float, int]:
    """(RMSE, rows scored) of a linear model on the rows where its features and target are all numbers."""
    names = [*model["features"], model["target"]]
    values = []
    for row in rows:
        try:
            values.append([float(row[name]) for name in names])
        except (KeyError, TypeError, ValueError):
            continue
    if not values:
        raise EvaluationError(f"no row of the CSV has numbers in every column the model uses ({', '.join(names)})")
    table = np.array(values)
    coef = np.array([model["coefficients"][name] for name in model["features"]])
    predicted = table[:, :-1] @ coef + model["intercept"]
    return float(np.sqrt(np.mean((predicted - table[:, -1]) ** 2))), len(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api = HfApi()  # HF_TOKEN (a secret of the job) and HF_ENDPOINT come from the environment
    proposed = load_model(api, args.model, args.revision)
    if proposed is None:
        raise EvaluationError(f"the pull request ({args.revision}) has no model.json: nothing to evaluate")
    dataset = args.dataset
    if dataset is None:
        card = api.hf_hub_download(args.model, "README.md", revision=args.revision)
        with open(card, encoding="utf-8") as handle:
            datasets = ModelCard(handle.read(), ignore_metadata_errors=True).data.to_dict().get("datasets") or []
        if not datasets:
            raise EvaluationError("the model card names no dataset (`datasets:` in its metadata): pass --dataset")
        dataset = datasets[0]
    file = args.file or next((f for f in api.list_repo_files(dataset, repo_type="dataset") if f.endswith(".csv")), None)
    if file is None:
        raise EvaluationError(f"no .csv file in {dataset}: pass --file")
    with open(api.hf_hub_download(dataset, file, repo_type="dataset"), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))

    rmse, scored = score(proposed, rows)
    print(f"{args.revision}: rmse {rmse:.6g} on {scored} rows of {dataset}/{file}", flush=True)
    current = load_model(api, args.model, "main")
    main_rmse = score(current, rows)[0] if current is not None else None
    if main_rmse is not None:
        print(f"main: rmse {main_rmse:.6g}", flush=True)
    result = {"dataset": dataset, "rows": scored, "rmse": rmse, "main_rmse": main_rmse}
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EvaluationError as exc:
        print(f"cannot evaluate: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
