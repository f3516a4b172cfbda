"""Every setting's error names the setting and its value in the project's words (not
pydantic's), and nonsense values are refused when the settings load (issue 12 kind)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from streams.errors import SettingsError
from streams.settings import LISTEN_PORTS, SECRET_SETTINGS, Settings, load_settings

# Settings that take any text or any path: nothing to refuse in "nonsense!".
FREE_FORM = {
    "home",
    "run_dir_override",
    "kafka_host",
    "mqtt_host",
    "worker_bind",
    "watch_sensors",
    "kafka_username",
}


def env_name(field: str) -> str:
    return "CITYBRAIN_RUN_DIR" if field == "run_dir_override" else f"CITYBRAIN_{field.upper()}"


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for key in [k for k in __import__("os").environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


@pytest.mark.parametrize("field", sorted(set(Settings.model_fields) - FREE_FORM - SECRET_SETTINGS))
def test_every_setting_refuses_nonsense_naming_itself_and_the_value(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    message = refusal(monkeypatch, **{env_name(field): "nonsense!"})
    assert message.startswith(f"{env_name(field)} is 'nonsense!': "), message
    assert "Input should" not in message and "\n" not in message


@pytest.mark.parametrize("field", sorted(SECRET_SETTINGS))
def test_a_secret_setting_is_named_but_its_value_never_shown(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    # A secret is any text, so a bad one is refused only beside the setting that needs it.
    env = {env_name(field): "hunter2", "CITYBRAIN_WEBHOOK_TIMEOUT": "soon"}
    message = refusal(monkeypatch, **env)
    assert "hunter2" not in message
    assert message.startswith("CITYBRAIN_WEBHOOK_TIMEOUT is 'soon': expected a number")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CITYBRAIN_KAFKA_PORT", "abc", "expected a port number, 1..65535"),
        ("CITYBRAIN_KAFKA_PORT", "99999", "expected a port number, 1..65535"),
        ("CITYBRAIN_INGEST_HTTP_PORT", "80000", "expected a port number, 1..65535"),
        ("CITYBRAIN_WORKER_PORT", "0", "expected a port number, 1..65535"),
        ("CITYBRAIN_MQTT_PORT", "-1", "expected a port number, 1..65535"),
        ("CITYBRAIN_PROMETHEUS_PORT", "65536", "expected a port number, 1..65535"),
        ("CITYBRAIN_KAFKA_CONTROLLER_PORT", "0", "expected a port number, 1..65535"),
        ("CITYBRAIN_KAFKA_PORT", "19692.0", "expected a port number, 1..65535"),
        ("CITYBRAIN_WORKER_PORT", "16066.5", "expected a port number, 1..65535"),
        ("CITYBRAIN_PARTITIONS", "0", "expected at least 1"),
        ("CITYBRAIN_CORROBORATION", "maybe", "expected true or false"),
        ("CITYBRAIN_SCORE_THRESHOLD", "-1", "expected more than 0"),
        ("CITYBRAIN_SCORE_THRESHOLD", "nan", "expected a finite number"),
        ("CITYBRAIN_ACK_DEADLINE_SECONDS", "-1", "expected at least 1"),
        # t177: every wait_ack looping back on its timeout notified at each deadline check.
        ("CITYBRAIN_ACK_DEADLINE_SECONDS", "0.001", "expected at least 1"),
        ("CITYBRAIN_MAX_FUTURE_SKEW", "-1", "expected at least 0"),
        ("CITYBRAIN_DEADLINE_CHECK_INTERVAL", "0", "expected at least 0.001"),
        ("CITYBRAIN_BURST_SWEEP_INTERVAL", "-1", "expected at least 0.001"),
        # t171: a window's sub-bucket of 0 s (5e-324 / 6) failed every report.
        ("CITYBRAIN_BURST_BUCKET_SECONDS", "5e-324", "expected at least 1"),
        ("CITYBRAIN_BURST_BUCKET_SECONDS", "0.5", "expected at least 1"),
        ("CITYBRAIN_QUIET_READINGS", "0", "expected at least 1"),
        ("CITYBRAIN_REPLIES_WEBHOOK_URL", "notaurl", "expected an http:// or https:// URL"),
        ("CITYBRAIN_GRAFANA_URL", "notaurl", "expected an http:// or https:// URL"),
        ("CITYBRAIN_GRAFANA_URL", "http://", "expected an http:// or https:// URL"),
        ("CITYBRAIN_GRAFANA_URL", "localhost:3000", "expected an http:// or https:// URL"),
        ("CITYBRAIN_KAFKA_HOST", "http://kafka:9092", "expected a host name or IP address"),
        ("CITYBRAIN_TOPIC_PREFIX", "my topics", "expected letters, digits"),
        ("CITYBRAIN_GRID_FILE", "/nope.yaml", "no such file"),
        ("CITYBRAIN_ROUTING_FILE", "/nope.yaml", "no such file"),
        ("CITYBRAIN_PLAYBOOK_DIR", "/nope", "no such directory"),
        ("CITYBRAIN_API_TOKENS_FILE", "/nope.yaml", "no such file"),
        ("CITYBRAIN_DETECTOR", "nosuch", "expected one of discord, ensemble,"),
        ("CITYBRAIN_KAFKA_SECURITY_PROTOCOL", "TLS", "expected 'PLAINTEXT', 'SASL_PLAINTEXT'"),
        # Values the worker's Kafka client cannot take: before, each passed here and the
        # worker crashed at start with a traceback (faust's ImproperlyConfigured: "cannot
        # be greater than broker_request_timeout"; aiokafka's "argument out of range").
        ("CITYBRAIN_SESSION_TIMEOUT", "3600", "expected at most 90"),
        ("CITYBRAIN_FETCH_MAX_BYTES", "1" + "0" * 21, "expected at most 2,147,483,647"),
        # A unit written after the number: before, only "expected a number".
        (
            "CITYBRAIN_WEBHOOK_TIMEOUT",
            "5s",
            "expected a number of seconds, without a unit: write 5",
        ),
        ("CITYBRAIN_HTTP_TIMEOUT", "1m", "expected a number of seconds, without a unit: write 60"),
        (
            "CITYBRAIN_FETCH_MAX_WAIT",
            "100ms",
            "expected a number of seconds, without a unit: write 0.1",
        ),
        (
            "CITYBRAIN_FETCH_MAX_BYTES",
            "8MiB",
            "expected a whole number of bytes, without a unit: write 8388608",
        ),
        ("CITYBRAIN_SESSION_TIMEOUT", "5 parsecs", "expected a number of seconds, without a unit"),
        # t151: a setting in seconds named by no suffix, and sizes of bytes alike.
        (
            "CITYBRAIN_GROUP_RETENTION",
            "2d",
            "expected a number of seconds, without a unit: write 172800",
        ),
        (
            "CITYBRAIN_CSV_MAX_LINE_BYTES",
            "1MB",
            "expected a whole number of bytes, without a unit: write 1000000",
        ),
        # t151: pydantic's lax int took 2.0 as 2 (and refused 2.5); a port refused 19692.0.
        ("CITYBRAIN_PARTITIONS", "2.0", "expected a whole number"),
        ("CITYBRAIN_COMMIT_EVERY", "1e6", "expected a whole number"),
        ("CITYBRAIN_BATCH_SIZE", "2k", "expected a whole number"),
        # Helper t52: "²".isdigit() is true; the JVM then refused the heap at stack up.
        ("CITYBRAIN_KAFKA_HEAP", "²m", "expected a JVM heap size such as 512m or 2g"),
        ("CITYBRAIN_KAFKA_HEAP", "١٠٢٤", "expected a JVM heap size such as 512m or 2g"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_setting_and_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    message = refusal(monkeypatch, **{name: value})
    assert message.startswith(f"{name} is {value!r}: {expected}"), message


def test_a_file_setting_given_a_directory_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    message = refusal(monkeypatch, CITYBRAIN_GRID_FILE=str(tmp_path))
    assert message.startswith(
        f"CITYBRAIN_GRID_FILE is {str(tmp_path)!r}: a directory, expected a file: name a file in it"
    )


def test_a_playbook_dir_without_playbooks_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # It was "routing.yaml:4: … playbook 'sensor-anomaly' does not exist (known: [])".
    message = refusal(monkeypatch, CITYBRAIN_PLAYBOOK_DIR=str(tmp_path))
    assert message.startswith(f"CITYBRAIN_PLAYBOOK_DIR is {str(tmp_path)!r}: no playbooks")


def test_every_bad_setting_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, CITYBRAIN_KAFKA_PORT="abc", CITYBRAIN_PARTITIONS="0")
    assert "CITYBRAIN_KAFKA_PORT is 'abc'" in message
    assert "CITYBRAIN_PARTITIONS is '0'" in message


def test_min_samples_above_the_window_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, CITYBRAIN_DETECTOR_MIN_SAMPLES="500")
    assert "CITYBRAIN_DETECTOR_MIN_SAMPLES is 500: expected at most CITYBRAIN_DETECTOR_WINDOW" in (
        message
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tokens: [1, 2\nx: y\n", ":2: not valid YAML: "),
        ("- a\n- b\n", ": expected a mapping with a list 'tokens'"),
        ("tokens: oops\n", ": expected a mapping with a list 'tokens'"),
        ("tokens: [oops]\n", ":1: tokens entry 1: expected keys name, role, sha256"),
        (
            "tokens: [{name: a, role: mayor, sha256: x}]\n",
            ":1: tokens entry 1: role is 'mayor', expected one of",
        ),
        ("tokens: [{name: a, role: operator, sha256: x}]\n", ":1: tokens entry 1: sha256 is not"),
        # Trial 4: "tokens entry 2: role is 'mayor'" without a line to look at.
        (
            "tokens:\n  - name: a\n    role: operator\n    sha256: " + "a" * 64 + "\n"
            "  - name: b\n    role: mayor\n    sha256: " + "a" * 64 + "\n",
            ":6: tokens entry 2: role is 'mayor', expected one of",
        ),
        ("tokens:\n  - name: a\n", ":2: tokens entry 1: expected keys name, role, sha256"),
        # The name is the audit's actor: `~` was the actor "None", a list "['a']", and a
        # newline or escape sequence went into every log line naming it (t54).
        (
            "tokens:\n  - name: ~\n    role: operator\n    sha256: " + "a" * 64 + "\n",
            ":2: tokens entry 1: name is null, expected non-empty text",
        ),
        (
            "tokens:\n  - role: operator\n    name: [a]\n    sha256: " + "a" * 64 + "\n",
            ":3: tokens entry 1: name is a list, expected non-empty text",
        ),
        (
            'tokens:\n  - name: "a\\nb\\x1b[2J"\n    role: operator\n    sha256: '
            + "a" * 64
            + "\n",
            ":2: tokens entry 1: name is 'a\\nb\\x1b[2J', which holds a control character (U+000A) at character 2; "
            "expected non-empty text",
        ),
    ],
)
def test_a_bad_tokens_file_is_one_line_naming_the_setting_and_file(
    tmp_path: Path, text: str, says: str
) -> None:
    from streams.auth import TokenStore

    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        TokenStore.load(path)
    message = str(info.value)
    assert message.startswith(f"CITYBRAIN_API_TOKENS_FILE {path}{says}"), message
    assert "\n" not in message


def test_a_yaml_mistake_in_the_grid_is_one_line_with_file_and_line(tmp_path: Path) -> None:
    from playbooks.errors import PlaybookError
    from playbooks.loader import load_grid

    path = tmp_path / "grid.yaml"
    path.write_text("version: 1\ncells: [a, b\nsensors: []\n")
    with pytest.raises(PlaybookError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"{path}:3: not valid YAML: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [(a, b) for i, a in enumerate(LISTEN_PORTS) for b in LISTEN_PORTS[i + 1 :]],
)
def test_two_listening_ports_set_alike_are_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch, first: str, second: str
) -> None:
    # Kafka's port equal to its controller's was a 14-line Java exception from stack up.
    message = refusal(monkeypatch, **{env_name(first): "20000", env_name(second): "20000"})
    assert message == (
        f"{env_name(second)} is 20000, the same as {env_name(first)}: the two must differ "
        "(each is a server's own port); give one another port"
    )


def test_a_remote_kafka_or_broker_may_share_a_port_number_with_a_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CITYBRAIN_KAFKA_HOST", "kafka.example")
    monkeypatch.setenv("CITYBRAIN_KAFKA_PORT", "16066")
    monkeypatch.setenv("CITYBRAIN_MQTT_HOST", "broker.example")
    monkeypatch.setenv("CITYBRAIN_MQTT_PORT", "16080")
    settings = load_settings()
    assert (settings.kafka_port, settings.worker_port) == (16066, 16066)
    assert (settings.mqtt_port, settings.ingest_http_port) == (16080, 16080)


@pytest.mark.parametrize("heartbeat", ["10", "20"])
def test_a_heartbeat_not_below_the_session_timeout_is_refused(
    monkeypatch: pytest.MonkeyPatch, heartbeat: str
) -> None:
    message = refusal(monkeypatch, CITYBRAIN_HEARTBEAT_INTERVAL=heartbeat)
    assert message.startswith(
        f"CITYBRAIN_HEARTBEAT_INTERVAL is {heartbeat}: expected less than "
        "CITYBRAIN_SESSION_TIMEOUT (10 s)"
    ), message


@pytest.mark.parametrize("agree", ["0.9", "0.95"])
def test_a_corroboration_agree_not_below_decisive_is_refused(
    monkeypatch: pytest.MonkeyPatch, agree: str
) -> None:
    message = refusal(monkeypatch, CITYBRAIN_CORROBORATION_AGREE=agree)
    assert message == (
        f"CITYBRAIN_CORROBORATION_AGREE is {agree}: expected less than "
        "CITYBRAIN_CORROBORATION_DECISIVE (0.9)"
    )


def _choice_settings() -> list[tuple[str, str]]:
    """(field, choice) for every choice of every setting that takes one of a few."""
    import typing

    return [
        (field, choice)
        for field, info in Settings.model_fields.items()
        if typing.get_origin(info.annotation) is typing.Literal
        for choice in typing.get_args(info.annotation)
    ]


@pytest.mark.parametrize(("field", "choice"), _choice_settings())
def test_a_misspelt_choice_suggests_the_closest(
    monkeypatch: pytest.MonkeyPatch, field: str, choice: str
) -> None:
    """Helper brief t37 (a sibling of the command line's): CITYBRAIN_FAUST_DRAIN=batc
    listed the choices and did not say which was meant."""
    message = refusal(monkeypatch, **{env_name(field): choice + choice[-1]})
    assert message.startswith(f"{env_name(field)} is {choice + choice[-1]!r}: expected "), message
    assert message.endswith(f" (did you mean {choice!r}?)"), message
    assert "did you mean" not in refusal(monkeypatch, **{env_name(field): "zzzzzz"})


def test_a_misspelt_detector_suggests_the_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    """A newcomer's CITYBRAIN_DETECTOR=tial listed the detectors alone (checked by a
    validator, not a Literal, so the choices' answer above missed it)."""
    message = refusal(monkeypatch, CITYBRAIN_DETECTOR="tial")
    assert message.startswith("CITYBRAIN_DETECTOR is 'tial': expected one of "), message
    assert message.endswith(" (did you mean 'tail'?)"), message


def test_a_misspelt_token_role_suggests_the_closest(tmp_path: Path) -> None:
    from streams.auth import TokenStore

    path = tmp_path / "tokens.yaml"
    path.write_text("tokens: [{name: a, role: operater, sha256: " + "a" * 64 + "}]\n")
    with pytest.raises(SettingsError) as info:
        TokenStore.load(path)
    assert str(info.value).endswith(" (did you mean 'operator'?)"), info.value


NUMERIC = sorted(
    name
    for name, field in Settings.model_fields.items()
    if any(kind in str(field.annotation) for kind in ("int", "float"))
)


@pytest.mark.parametrize("value", ["1e300", "1" + "0" * 20])
@pytest.mark.parametrize("field", NUMERIC)
def test_every_number_has_an_upper_bound(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    # A slip of magnitude passed before: CITYBRAIN_DEADLINE_CHECK_INTERVAL=1e300 made the
    # worker never check a deadline (asyncio sleeps that long without complaint),
    # CITYBRAIN_WEBHOOK_RETRIES=2000 overflowed the backoff's float at attempt 1,024, and
    # CITYBRAIN_PARTITIONS=10**20 reached Kafka's topic creation.
    message = refusal(monkeypatch, **{env_name(field): value})
    assert message.startswith(f"{env_name(field)} is {value!r}: expected "), message
    assert "\n" not in message


SECONDS = [
    "http_timeout",
    "webhook_timeout",
    # t177: 0 was taken, and every retry of a failing receiver followed the last at once.
    "webhook_backoff",
    "heartbeat_interval",
    "commit_interval",
    "fetch_max_wait",
    "corroboration_window",
    "deadline_check_interval",
    "burst_sweep_interval",
    "mute_check_interval",
]


@pytest.mark.parametrize("value", ["5e-324", "1e-300", "0.0009"])
@pytest.mark.parametrize("field", SECONDS)
def test_no_seconds_setting_takes_less_than_a_millisecond(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    # t171: above 0 was the bound, and 5e-324 passed: a timer of it ticked 50,000 times
    # a second, each tick a warning that it overlapped the last; a heartbeat of it was
    # 0 ms to aiokafka.
    assert refusal(monkeypatch, **{env_name(field): value}) == (
        f"{env_name(field)} is {value!r}: expected at least 0.001"
    )
    monkeypatch.setenv(env_name(field), "0.001")
    assert getattr(load_settings(), field) == 0.001


@pytest.mark.parametrize("value", ["5e-324", "0.001", "0.999"])
def test_the_ack_deadline_is_at_least_a_second(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # t177: it replaces every wait_ack's and approval's deadline, which a playbook may
    # not set below a second; 0.001 passed, and a wait_ack looping back on its timeout
    # notified at every deadline check, as `deadline: 0s` did.
    assert refusal(monkeypatch, CITYBRAIN_ACK_DEADLINE_SECONDS=value) == (
        f"CITYBRAIN_ACK_DEADLINE_SECONDS is {value!r}: expected at least 1"
    )
    monkeypatch.setenv("CITYBRAIN_ACK_DEADLINE_SECONDS", "1")
    assert load_settings().ack_deadline_seconds == 1.0


def test_the_bounds_name_the_largest_value_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    assert refusal(monkeypatch, CITYBRAIN_PARTITIONS="1001") == (
        "CITYBRAIN_PARTITIONS is '1001': expected at most 1000"
    )
    assert refusal(monkeypatch, CITYBRAIN_SCORE_THRESHOLD="1.5") == (
        "CITYBRAIN_SCORE_THRESHOLD is '1.5': expected at most 1"
    )
    assert refusal(monkeypatch, CITYBRAIN_WEBHOOK_RETRIES="2000") == (
        "CITYBRAIN_WEBHOOK_RETRIES is '2000': expected at most 100"
    )


@pytest.mark.parametrize(
    ("variable", "longest", "tail"),
    [
        ("CITYBRAIN_TOPIC_PREFIX", 235, ".corroboration"),
        ("CITYBRAIN_APP_ID", 225, "-corroboration-changelog"),
    ],
)
def test_a_prefix_or_app_id_too_long_for_kafkas_topic_names_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, longest: int, tail: str
) -> None:
    """t66: a 245-character CITYBRAIN_TOPIC_PREFIX passed, and `stack up` ended, once
    Kafka had started, in "unexpected InvalidTopicError … a bug" (exit 70)."""
    monkeypatch.setenv(variable, "p" * longest)
    load_settings()  # at the bound: accepted
    monkeypatch.setenv(variable, "p" * (longest + 1))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    said = str(caught.value)
    assert said.startswith(f"{variable} is 'ppp")
    assert f"{longest + 1:,} characters, at most {longest}: Kafka's topic names" in said
    assert repr(tail) in said


def test_every_topic_of_a_worker_at_the_bounds_fits_kafkas_limit(tmp_path: Path) -> None:
    # The bounds above are what follows each setting in the longest name; a new table
    # or topic with a longer name than those fails here, not at a user's `stack up`.
    from prometheus_client import CollectorRegistry

    from playbooks.errors import PlaybookConfigError
    from playbooks.loader import LIBRARY
    from streams.app import create_app
    from streams.settings import TOPIC_NAME_MAX

    at_bounds = {"topic_prefix": "p" * 235, "app_id": "a" * 225}
    # The library's task topics do not fit beside a 235-character prefix: refused at the
    # start, naming each (t122's open item; Kafka refused them at stack up and at a send).
    with pytest.raises(PlaybookConfigError, match=r"tasks\.traffic-signals is 257 characters"):
        create_app(Settings(run_dir_override=tmp_path, **at_bounds), CollectorRegistry())
    # The worker's own topics and changelogs at the bounds, with task topics that fit.
    library = tmp_path / "library"
    shutil.copytree(LIBRARY, library)
    for path in (library / "playbooks").glob("*.yaml"):
        text = re.sub(r"topic: tasks\.[\w-]+", "topic: t", path.read_text(encoding="utf-8"))
        path.write_text(text, encoding="utf-8")
    settings = Settings(
        run_dir_override=tmp_path,
        playbook_dir=library / "playbooks",
        routing_file=library / "routing.yaml",
        **at_bounds,
    )
    app = create_app(settings, CollectorRegistry())
    names = set(settings.topics.values())
    names |= {t.changelog_topic.get_topic_name() for t in app.tables.values()}
    for topic in app.topics:
        names.update(topic.topics)
    assert len(app.tables) >= 8 and max(map(len, names)) == TOPIC_NAME_MAX


def test_a_list_for_a_setting_of_one_choice_is_said_as_a_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """t147: `CITYBRAIN_DETECTOR=tail,ensemble` was asked "did you mean 'ensemble'?"."""
    message = refusal(monkeypatch, CITYBRAIN_DETECTOR="tail,ensemble")
    assert message.startswith("CITYBRAIN_DETECTOR is 'tail,ensemble': expected one of ")
    assert message.endswith(" (one choice, not a list: give 'tail' or 'ensemble')"), message


def test_every_number_setting_is_a_whole_number_or_says_its_unit() -> None:
    """t151: CITYBRAIN_GROUP_RETENTION=2d was only "expected a number" (its unit was read
    from a name suffix it lacks) and CITYBRAIN_PARTITIONS=2.0 was taken as 2: every whole
    number setting is in WHOLE_NUMBER_FIELDS, and every other number is in seconds
    (SECONDS_FIELDS) or a ratio of 0..1."""
    from streams.settings import SECONDS_FIELDS, WHOLE_NUMBER_FIELDS

    ratios = {"score_threshold", "corroboration_agree", "corroboration_decisive"}
    for name, field in Settings.model_fields.items():
        if name.endswith("_port") or name == "csv_max_line_bytes":
            continue  # (their own types refuse all but digits: Port, LineBytes)
        if field.annotation is int:
            assert name in WHOLE_NUMBER_FIELDS, name
        elif field.annotation in (float, float | None):
            assert (name in SECONDS_FIELDS) != (name in ratios), name
    for name in WHOLE_NUMBER_FIELDS:
        for value in ("2.0", "1e3", "1_000", "２"):
            with pytest.raises(SettingsError, match="expected a whole number"):
                load_settings(**{name: value})


@pytest.mark.parametrize(
    ("value", "extra"),
    [
        ("0m", ""),
        ("1k", ""),
        ("128m", ""),  # the broker's start: java.lang.OutOfMemoryError (measured, t190)
        ("512", " (512 without k, m or g is bytes to the JVM: write 512m for MiB)"),
        ("99999999999999999999999g", ""),  # the JVM: "Invalid initial heap size"
        ("1" + "0" * 5000 + "g", ""),
    ],
)
def test_a_kafka_heap_the_local_kafka_cannot_start_with_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, extra: str
) -> None:
    # t190: any size passed, and Kafka exited at `stack up` (the JVM refused it, or the
    # broker ran out of heap at its start), said by a Java stack trace from its log.
    message = refusal(monkeypatch, CITYBRAIN_KAFKA_HEAP=value)
    assert message.startswith("CITYBRAIN_KAFKA_HEAP is '"), message
    assert "expected a JVM heap size from 256m" in message, message
    assert f"such as 512m or 2g{extra};" in message, message


@pytest.mark.parametrize("value", ["256m", "262144k", "512M", "1g", "0512m"])
def test_a_kafka_heap_from_256m_is_taken(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("CITYBRAIN_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CITYBRAIN_KAFKA_HEAP", value)
    assert load_settings().kafka_heap == value
