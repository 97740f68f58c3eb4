"""A reader's copy of the embedded registry, for when another process holds its file.

DuckDB lets one process at a time open a database file, so `ml-release status` and `history`
would wait for any writer. Every committed write therefore also leaves a JSON copy of the
registry beside its file (written while the writer still holds the file, renamed into place,
so it is always complete and in commit order). Readers use the live file when they can open it
within a second or two, and this copy otherwise, saying so.
"""

import json
import os
from datetime import datetime
from pathlib import Path

from ml_release.errors import DatabaseLockedError
from ml_release.registry.backend import Connection
from ml_release.registry.core import Registry, RegistryReads
from ml_release.registry.records import EVENT_COLUMNS, VERSION_COLUMNS

READ_LOCK_TIMEOUT = 2.0


def snapshot_path(database: Path) -> Path:
    """Where the copy of `database` lives."""
    return database.with_name(database.name + ".snapshot.json")


def write_snapshot(connection: Connection, database: Path) -> None:
    """Write every table as JSON next to `database`, atomically (temp file, then rename)."""

    def rows(sql: str) -> list[list]:
        return [
            [value.isoformat() if isinstance(value, datetime) else value for value in row]
            for row in connection.execute(sql).fetchall()
        ]

    data = {
        "versions": rows(f"SELECT {VERSION_COLUMNS} FROM model_versions"),
        "aliases": rows("SELECT model, alias, version FROM aliases"),
        "ledger": rows(f"SELECT {EVENT_COLUMNS} FROM ledger ORDER BY seq"),
    }
    target = snapshot_path(database)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data))
    os.replace(partial, target)


class SnapshotRegistry(RegistryReads):
    """The read API over the last snapshot; `written_at` says how fresh it is."""

    def __init__(self, database: Path) -> None:
        path = snapshot_path(database)
        self.where = f"{database} (snapshot {path.name})"
        self.path = database
        self.written_at = datetime.fromtimestamp(path.stat().st_mtime).astimezone()
        data = json.loads(path.read_text())
        self._data = data
        self.last_seq = data["ledger"][-1][0] if data["ledger"] else 0

    @staticmethod
    def _when(row: list, position: int) -> tuple:
        row = list(row)
        row[position] = datetime.fromisoformat(row[position])
        return tuple(row)

    def _version_rows(self, model: str) -> list[tuple]:
        return [self._when(r, 5) for r in self._data["versions"] if r[0] == model]

    def _event_rows(self, model: str) -> list[tuple]:
        return [self._when(r, 1) for r in self._data["ledger"] if r[2] == model]

    def _alias_rows(self, model: str) -> dict[str, str]:
        return {alias: version for m, alias, version in self._data["aliases"] if m == model}


def open_for_reading(database: Path) -> Registry | SnapshotRegistry:
    """The live registry when its file opens within seconds, else its last snapshot.

    Raises:
        DatabaseLockedError: The file is held by another process and there is no snapshot.
    """
    try:
        return Registry(database, lock_timeout=READ_LOCK_TIMEOUT)
    except DatabaseLockedError:
        if not snapshot_path(database).exists():
            raise
        return SnapshotRegistry(database)
