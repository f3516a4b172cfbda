import os
import platform
from datetime import UTC, datetime


def machine() -> dict[str, str]:
    """The machine and the moment, recorded with every result."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
