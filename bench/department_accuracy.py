"""Accuracy of the department classifier, measured honestly on data it did not train on:
each NYC 311 snapshot is held out whole (train on everything else); the SF fire calls,
whose departments (fire, EMS) occur nowhere else, are split in five folds.

    python -m bench.department_accuracy
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from bench import run_main
from streams.departments import TRAINING_FILE, DepartmentClassifier


def main(argv: list[str] | None = None) -> None:
    # No options, but --help describes it rather than running it (trial 25: it ran).
    argparse.ArgumentParser(
        prog="python -m bench.department_accuracy",
        description="Accuracy and macro F1 of the department classifier on data it did not "
        "train on: each NYC 311 snapshot held out whole, the SF fire calls in five folds. "
        "Prints one JSON list.",
    ).parse_args(argv)
    data = pd.read_csv(TRAINING_FILE)
    rows = []
    splits = []
    for source in sorted(s for s in data["source"].unique() if s.startswith("nyc311")):
        splits.append((source, data["source"] != source, data["source"] == source))
    sf = data.index[data["source"] == "sf_fire_calls"]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    held = pd.Series(False, index=data.index)
    sf_true: list[str] = []
    sf_pred: list[str] = []
    for _train_idx, test_idx in folds.split(sf, data.loc[sf, "department"]):
        test_mask = held.copy()
        test_mask[sf[test_idx]] = True
        model = DepartmentClassifier().fit(
            data.loc[~test_mask, "text"], data.loc[~test_mask, "department"]
        )
        sf_true += list(data.loc[test_mask, "department"])
        sf_pred += model.predict(list(data.loc[test_mask, "text"]))
    for source, train, test in splits:
        predicted = (
            DepartmentClassifier()
            .fit(data.loc[train, "text"], data.loc[train, "department"])
            .predict(list(data.loc[test, "text"]))
        )
        rows.append(_row(source, list(data.loc[test, "department"]), predicted))
    rows.append(_row("sf_fire_calls (5-fold)", sf_true, sf_pred))
    print(json.dumps(rows, indent=2))


def _row(name: str, truth: list[str], predicted: list[str]) -> dict[str, object]:
    return {
        "held_out": name,
        "reports": len(truth),
        "accuracy": round(accuracy_score(truth, predicted), 3),
        "macro_f1": round(f1_score(truth, predicted, average="macro", zero_division=0), 3),
    }


if __name__ == "__main__":
    run_main(main)
