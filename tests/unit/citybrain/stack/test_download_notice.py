"""t104: the first `citybrain demo` said it downloaded "about 120 MB of jars" (53 MB on
disk; the README says about 55 MB), and the first `stack up` said nothing of the download
at all: "kafka starting (about 30 s ...)" and then minutes of silence while Maven ran.
Both now say the one notice, with the README's size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from citybrain.stack import KafkaBroker
from citybrain.stack.kafka import KAFKA_JARS_MB, KAFKA_VERSION
from streams.settings import REPO_ROOT, Settings


def test_the_notice_gives_the_size_the_readme_gives() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    said = re.search(rf"Kafka {re.escape(KAFKA_VERSION)}'s jars \(about (\d+) MB\)", readme)
    assert said is not None, "README no longer says the download's size"
    assert int(said.group(1)) == KAFKA_JARS_MB


def test_no_notice_once_the_jars_are_there(tmp_path: Path) -> None:
    kafka = KafkaBroker(Settings(run_dir_override=tmp_path / "run", home=tmp_path))
    notice = kafka.download_notice()
    assert notice == (
        f"first run: downloading Kafka {KAFKA_VERSION} (about {KAFKA_JARS_MB} MB of jars) "
        f"from Maven Central into {kafka.libs.parent} with mvn; later runs reuse it"
    )
    kafka.libs.parent.mkdir(parents=True)
    (kafka.libs.parent / ".complete").touch()
    assert kafka.download_notice() is None


def test_a_first_stack_up_says_it_downloads_before_it_does(
    shell: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No mvn on the PATH, so the download is refused at once: what was said before it?"""
    from citybrain.cli import main

    assert main(["stack", "up"]) == 3
    out, err = capsys.readouterr()
    first = out.splitlines()[0]
    assert first.startswith(
        f"first run: downloading Kafka {KAFKA_VERSION} (about {KAFKA_JARS_MB} MB of jars)"
    ), out
    assert "mvn not found" in err
