"""Which department a citizen report belongs to, from its free text.

TF-IDF over character n-grams (so Chinese, which has no spaces, and English both work,
and misspellings still share n-grams) with a linear classifier; scikit-learn does the
work. Trained from ``datasets/incident_departments.csv.gz`` (real NYC 311 and San
Francisco fire-call records, see datasets/README.md).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from playbooks.pickled import read_or_build
from streams.settings import REPO_ROOT

TRAINING_FILE = REPO_ROOT / "datasets" / "incident_departments.csv.gz"
log = logging.getLogger(__name__)


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
    def from_training_file(
        cls, path: Path = TRAINING_FILE, cache_dir: Path | None = None
    ) -> DepartmentClassifier:
        """Fitted on the training file ``path`` (CSV with ``text`` and ``department``).

        With ``cache_dir`` (the worker's ``CITYBRAIN_HOME/models``), the fitted model is
        kept there as a pickle named by the SHA-256 of the file's bytes, the classifier's
        parameters and scikit-learn's version, and read back instead of fitted: the fit
        took 2.6 s of every worker start (its restart after a crash included), the read
        1 ms. A cache that is missing, unreadable or written by another version is fitted
        and written again (write then rename, so a reader never sees half a file); one
        that cannot be written is said once and skipped. Never raises for the cache; the
        pickle is read only from the user's own cache directory, as scikit-learn's model
        persistence guidance asks (same version, trusted source)."""
        if cache_dir is None:
            return cls._fitted(path)
        raw = path.read_bytes()
        key = hashlib.sha256(
            b"\0".join([raw, repr((cls().min_df, cls().c)).encode(), sklearn.__version__.encode()])
        ).hexdigest()[:32]
        return read_or_build(
            cache_dir / f"departments-{key}.pickle",
            lambda: cls._fitted(path),
            lambda found: isinstance(found, cls) and found.model_ is not None,
            log=log,
            what="departments: the fitted model",
            unkept="each start fits it again (a few seconds)",
        )

    @classmethod
    def _fitted(cls, path: Path) -> DepartmentClassifier:
        frame = pd.read_csv(path)
        return cls().fit(frame["text"].astype(str), frame["department"].astype(str))
