"""A folder of files a command reads takes regular files only (t121): a pipe named like
one of them (``p.yaml`` among the playbooks, ``p.csv`` in NAB's corpus, as in `detect
--input-dir`) was opened and waited on for ever, silent, and a folder named like one
(``old.yaml/``) was an error "cannot read: Is a directory". A folder is no file of
the folder's; a pipe or a link to nothing is named for what it is."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from citybrain.errors import InputError
from citybrain.nab import load_corpus
from playbooks.loader import PLAYBOOK_DIR, check_playbooks


def _without_waiting(pipe: Path, call: Callable[[], Any]) -> list[Any]:
    """``call()``'s result or exception, in a list; the old code waits in ``open()`` for
    the pipe's writer, so after 30 s the pipe is given one (EOF) and the test fails."""
    done: list[Any] = []

    def run() -> None:
        try:
            done.append(call())
        except Exception as exc:
            done.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(30)
    waited = worker.is_alive()
    if waited:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
    assert not waited, f"waited on the pipe {pipe}"
    return done


def test_a_playbook_folder_passes_over_folders_and_names_a_pipe(tmp_path: Path) -> None:
    folder = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOK_DIR, folder)
    (folder / "old.yaml").mkdir()
    found, _, errors = check_playbooks(folder)
    assert errors == [] and len(found) == len(list(PLAYBOOK_DIR.glob("*.yaml")))
    os.mkfifo(folder / "p.yaml")
    (folder / "l.yaml").symlink_to(tmp_path / "gone.yaml")
    [(found_now, _, errors)] = _without_waiting(folder / "p.yaml", lambda: check_playbooks(folder))
    assert errors == [
        f"{folder / 'l.yaml'}: a symbolic link to '{tmp_path / 'gone.yaml'}', which does not exist",
        f"{folder / 'p.yaml'} is a pipe, expected a regular file (a playbook's YAML)",
    ]
    assert found_now.keys() == found.keys()  # the others are still read


def test_a_nab_corpus_passes_over_folders_and_names_a_pipe(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "realKnownCause" / "old.csv").mkdir(parents=True)
    (data / "realKnownCause" / "a.csv").write_text(
        "timestamp,value\n" + "".join(f"2014-04-10 07:{m:02d}:00,{m % 3}\n" for m in range(20))
    )
    labels = tmp_path / "combined_windows.json"
    labels.write_text('{"realKnownCause/a.csv": []}\n')
    cases = load_corpus(data, labels, lambda t, v: np.zeros_like(v))
    assert [c.name for c in cases] == ["realKnownCause/a.csv"]
    pipe = data / "realKnownCause" / "p.csv"
    os.mkfifo(pipe)
    [refused] = _without_waiting(
        pipe, lambda: load_corpus(data, labels, lambda t, v: np.zeros_like(v))
    )
    assert isinstance(refused, InputError)
    assert str(refused) == (
        f"{pipe} is a pipe (such as <(zcat FILE.gz)), expected a regular file: save its "
        "content to a file and give that"
    )
