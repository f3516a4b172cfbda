"""Kafka's server.log in the run directory is rolled by size and bounded in all (t176:
log4j's plain File appender wrote it without bound for as long as the stack ran). The
rollover itself was checked on the real broker with a 20 KB size: server.log and
server.log.1 to .5, each about 20 KB."""

from __future__ import annotations

from citybrain.stack.kafka import LOG4J2, SERVER_LOG_FILES, SERVER_LOG_MB


def properties() -> dict[str, str]:
    pairs = (line.split(" = ", 1) for line in LOG4J2.splitlines() if " = " in line)
    return {key: value for key, value in pairs}


def test_kafkas_log_is_rolled_by_size_and_its_files_are_bounded() -> None:
    conf = properties()
    assert conf["appender.file.type"] == "RollingFile"
    assert conf["rootLogger.appenderRef.file.ref"] == conf["appender.file.name"]
    assert conf["appender.file.fileName"] == "${sys:kafka.logs.dir}/server.log"
    assert conf["appender.file.filePattern"] == "${sys:kafka.logs.dir}/server.log.%i"
    assert conf["appender.file.policies.size.type"] == "SizeBasedTriggeringPolicy"
    assert conf["appender.file.policies.size.size"] == f"{SERVER_LOG_MB}MB"
    assert conf["appender.file.strategy.max"] == str(SERVER_LOG_FILES)
    # server.log.1 the newest, as the start's own fresh_log names the last start's.
    assert conf["appender.file.strategy.fileIndex"] == "min"
    assert (SERVER_LOG_FILES + 1) * SERVER_LOG_MB <= 1000
