"""Which department a citizen report belongs to, from its free text.

TF-IDF over character n-grams (so Chinese, which has no spaces, and English both work,
and misspellings still share n-grams) with a linear classifier; scikit-learn does the
work. Trained from ``datasets/incident_departments.csv.gz`` (real NYC 311 and San
Francisco fire-call records, see datasets/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from streams.settings import REPO_ROOT

TRAINING_FILE = REPO_ROOT / "datasets" / "incident_departments.csv.gz"


class DepartmentClassifier:
    def __init__(self, min_df: int = 1, c: float = 10.0) -> None:
        self.min_df = min_df
        self.c = c
        self.model_: Pipeline | None = None

    def fit(self, texts: Sequence[str], departments: Sequence[str]) -> DepartmentClassifier:
        self.model_ = make_pipeline(
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 4),
                min_df=self.min_df,
                sublinear_tf=True,
                lowercase=True,
            ),
            LogisticRegression(C=self.c, max_iter=2000),
        )
        self.model_.fit(list(texts), list(departments))
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        if self.model_ is None:
            raise RuntimeError("DepartmentClassifier.predict before fit")
        return [str(d) for d in self.model_.predict(list(texts))]

    @classmethod
    def departments(cls, path: Path = TRAINING_FILE) -> set[str]:
        """The departments ``from_training_file`` can predict (its classes), read
        without fitting."""
        return set(pd.read_csv(path, usecols=["department"])["department"].astype(str))

    @classmethod
    def from_training_file(cls, path: Path = TRAINING_FILE) -> DepartmentClassifier:
        frame = pd.read_csv(path)
        return cls().fit(frame["text"].astype(str), frame["department"].astype(str))
