"""The model registry and its append-only ledger.

- `model_versions`: one row per (model, version), one version per digest. Registering the same
  artifact twice is idempotent; the same version with another digest is a conflict.
- `aliases`: the `production` alias per model. It moves only by compare-and-set inside the
  transaction that also appends the ledger event, so alias and ledger always agree: a crash at
  any step leaves the state before or the state after, never a half. There is no `previous`
  alias: what production had before, and what is a rollback target, are read from the ledger
  (`ml_release.registry.timeline`), so a rollback cannot rewrite them.
- `ledger`: every registration, refusal, promotion, override, block, canary step and rollback,
  with time, actor, reason, spec hash, verdicts and lineage. Sequence numbers have no gaps;
  nothing is updated or deleted.
"""

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from ml_release.errors import ConflictError, NotFoundError
from ml_release.faults import fault_point
from ml_release.registry.backend import Backend, Connection, DuckDBBackend, backend_for
from ml_release.registry.records import (
    EVENT_COLUMNS,
    PRODUCTION,
    PRODUCTION_EVENTS,
    VERSION_COLUMNS,
    Event,
    Version,
)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS model_versions (
        model VARCHAR, version VARCHAR, digest VARCHAR NOT NULL, path VARCHAR NOT NULL,
        manifest VARCHAR NOT NULL, registered_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (model, version), UNIQUE (model, digest))""",
    """CREATE TABLE IF NOT EXISTS aliases (
        model VARCHAR, alias VARCHAR, version VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (model, alias))""",
    """CREATE TABLE IF NOT EXISTS ledger (
        seq BIGINT PRIMARY KEY, recorded_at TIMESTAMPTZ NOT NULL, model VARCHAR NOT NULL,
        event VARCHAR NOT NULL, actor VARCHAR NOT NULL, version VARCHAR, digest VARCHAR,
        from_version VARCHAR, reason VARCHAR, spec_hash VARCHAR, verdicts VARCHAR,
        lineage VARCHAR)""",
]


def default_actor() -> str:
    """Who is acting: the OS user (CI systems set USER too)."""
    try:
        return getpass.getuser()
    except OSError:  # no user database entry in some containers
        return "unknown"


def event_from_row(row: tuple | list) -> Event:
    """An `Event` from a ledger row in `EVENT_COLUMNS` order."""
    *head, verdicts, lineage = row
    return Event(*head, verdicts=json.loads(verdicts or "[]"), lineage=json.loads(lineage or "{}"))


def version_from_row(row: tuple | list) -> Version:
    """A `Version` from a model_versions row in `VERSION_COLUMNS` order."""
    *head, manifest, registered_at = row
    return Version(*head, manifest=json.loads(manifest), registered_at=registered_at)


class RegistryReads:
    """The read side, over three row sources a subclass provides (SQL or a snapshot)."""

    where: str

    def _version_rows(self, model: str) -> list[tuple]:
        raise NotImplementedError

    def _event_rows(self, model: str) -> list[tuple]:
        raise NotImplementedError

    def _alias_rows(self, model: str) -> dict[str, str]:
        raise NotImplementedError

    def state(self, model: str) -> "RegistryReads":
        """`model`'s state as of one moment; an in-memory reader already is one."""
        return self

    def versions(self, model: str) -> list[Version]:
        """Every registered version of `model`, oldest first."""
        found = [version_from_row(r) for r in self._version_rows(model)]
        return sorted(found, key=lambda v: (v.registered_at, v.version))

    def version(self, model: str, version: str) -> Version:
        """A registered version, or NotFoundError listing what exists."""
        known = self.versions(model)
        for registered in known:
            if registered.version == version:
                return registered
        latest = ", ".join(v.version for v in known[-5:]) or "none"
        raise NotFoundError(
            f"model {model!r} has no version {version!r} in the registry at {self.where}. "
            f"Latest registered: {latest} (`ml-release status` lists them)."
        )

    def by_digest(self, model: str, digest: str) -> Version | None:
        """The version registered with artifact digest `digest`, or None."""
        return next((v for v in self.versions(model) if v.digest == digest), None)

    def alias(self, model: str, alias: str = PRODUCTION) -> str | None:
        """The version an alias names, or None."""
        return self._alias_rows(model).get(alias)

    def events(self, model: str, kinds: tuple[str, ...] | None = None) -> list[Event]:
        """Ledger events of `model` in order, optionally only some kinds."""
        found = [event_from_row(r) for r in self._event_rows(model)]
        found.sort(key=lambda e: e.seq)
        return [e for e in found if kinds is None or e.event in kinds]

    def problems(self, model: str) -> list[str]:
        """Disagreements between the alias, the versions and the ledger (empty: consistent)."""
        production = self.alias(model, PRODUCTION)
        found = []
        if production is not None and production not in {v.version for v in self.versions(model)}:
            found.append(f"production names unregistered version {production!r}")
        changes = self.events(model, PRODUCTION_EVENTS)
        last = changes[-1].version if changes else None
        if last != production:
            found.append(f"ledger says {last!r} is in production, alias says {production!r}")
        return found


class ModelState(RegistryReads):
    """One model's versions, aliases and ledger, read together in one connection."""

    def __init__(self, where: str, versions: list, events: list, aliases: dict) -> None:
        self.where = where
        self._versions, self._events, self._aliases = versions, events, aliases

    def _version_rows(self, model: str) -> list[tuple]:
        return [r for r in self._versions if r[0] == model]

    def _event_rows(self, model: str) -> list[tuple]:
        return [r for r in self._events if r[2] == model]

    def _alias_rows(self, model: str) -> dict[str, str]:
        return self._aliases


# (path, inode, mtime, size) of registry files this process found holding the schema.
_SCHEMA_SEEN: set[tuple] = set()


class Registry(RegistryReads):
    """Model versions, the production alias and the ledger; every write one transaction."""

    def __init__(
        self,
        location: Path | str | Backend,
        lock_timeout: float = 30.0,
    ) -> None:
        """Open the registry at a DuckDB file path, a `postgresql://` URL, or a backend."""
        self.backend: Backend = (
            location if hasattr(location, "write") else backend_for(location, lock_timeout)
        )  # type: ignore[assignment]
        self.where = self.backend.where
        self.path = getattr(self.backend, "path", None)
        if not self._has_schema():  # a reader must not write (the file stays byte for byte)
            with self._write() as connection:
                for statement in SCHEMA:
                    connection.execute(statement)

    def _has_schema(self) -> bool:
        stamp = None
        if self.path is not None:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                return False
            # Every step of a run opens the registry: a file this process already saw holding
            # the schema, unchanged since, is not opened again just to look.
            stamp = (str(self.path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp in _SCHEMA_SEEN:
                return True
        with self.backend.read() as connection:
            rows = connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE "
                "table_catalog = current_database() AND table_schema = current_schema() "
                "AND table_name IN ('model_versions', 'aliases', 'ledger')"
            ).fetchall()
        found = int(rows[0][0]) == 3
        if found and stamp is not None:
            _SCHEMA_SEEN.add(stamp)
        return found

    def __repr__(self) -> str:
        return f"Registry({self.where!r})"

    @contextmanager
    def held(self) -> Iterator[Self]:
        """The registry kept open for a block that reads and writes it several times.

        A release step resolves its candidate and production with several reads; on the DuckDB
        file each read was an open of the file (about 20 ms of DuckDB's catalog). Inside the
        block they share one open database, and other processes wait for the block as they
        wait for any connection: hold it for one step's work, never across a run.
        """
        with self.backend.held():
            yield self

    def _write(self):
        from ml_release.registry.snapshot import write_snapshot

        if isinstance(self.backend, DuckDBBackend):
            path = self.backend.path
            return self.backend.write(lambda connection: write_snapshot(connection, path))
        return self.backend.write()

    # -- reading ------------------------------------------------------------------------------
    def _version_rows(self, model: str) -> list[tuple]:
        with self.backend.read() as connection:
            return connection.execute(
                f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE model = ?", [model]
            ).fetchall()

    def _event_rows(self, model: str) -> list[tuple]:
        with self.backend.read() as connection:
            return connection.execute(
                f"SELECT {EVENT_COLUMNS} FROM ledger WHERE model = ? ORDER BY seq", [model]
            ).fetchall()

    def _alias_rows(self, model: str) -> dict[str, str]:
        with self.backend.read() as connection:
            rows = connection.execute(
                "SELECT alias, version FROM aliases WHERE model = ?", [model]
            ).fetchall()
        return dict(rows)

    def state(self, model: str) -> ModelState:
        """`model`'s versions, aliases and ledger as of one moment (one connection).

        Commands that read several things (a rollback, `status`) read them once, here.
        """
        with self.backend.read() as connection:
            versions = connection.execute(
                f"SELECT {VERSION_COLUMNS} FROM model_versions WHERE model = ?", [model]
            ).fetchall()
            events = connection.execute(
                f"SELECT {EVENT_COLUMNS} FROM ledger WHERE model = ? ORDER BY seq", [model]
            ).fetchall()
            aliases = self._alias_rows_in(connection, model)
        return ModelState(self.where, versions, events, aliases)

    def models(self) -> list[str]:
        """Every model with a registered version or a ledger event."""
        with self.backend.read() as connection:
            rows = connection.execute(
                "SELECT model FROM model_versions UNION SELECT model FROM ledger"
            ).fetchall()
        return sorted(r[0] for r in rows)

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _append(connection: Connection, model: str, event: str, **fields: Any) -> Event:
        (seq,) = connection.execute("SELECT coalesce(max(seq), 0) + 1 FROM ledger").fetchall()[0]
        values = {
            "version": None,
            "digest": None,
            "from_version": None,
            "reason": None,
            "spec_hash": None,
            "verdicts": [],
            "lineage": {},
            "actor": default_actor(),
        } | {k: v for k, v in fields.items() if k != "actor" or v}
        record = Event(int(seq), datetime.now(UTC), model, event, **values)
        *head, verdicts, lineage = astuple(record)
        connection.execute(
            f"INSERT INTO ledger ({EVENT_COLUMNS}) VALUES ({', '.join('?' * 12)})",
            [*head, json.dumps(verdicts, default=str), json.dumps(lineage, default=str)],
        )
        return record

    def register(
        self, model: str, version: str, digest: str, path: str, manifest: dict, actor: str = ""
    ) -> tuple[Version, bool]:
        """Register an artifact; returns (version, created). Idempotent per digest."""
        with self._write() as connection:
            rows = connection.execute(
                "SELECT version, digest FROM model_versions WHERE model = ? "
                "AND (version = ? OR digest = ?)",
                [model, version, digest],
            ).fetchall()
            same = [v for v, d in rows if d == digest]
            if not same and rows:
                raise ConflictError(
                    f"{model} version {version!r} is already registered with digest "
                    f"{rows[0][1][:12]}, and this artifact has {digest[:12]}. A version is "
                    "immutable: publish the new model under another version."
                )
            if not same:
                connection.execute(
                    f"INSERT INTO model_versions ({VERSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    [model, version, digest, path, json.dumps(manifest), datetime.now(UTC)],
                )
                self._append(
                    connection,
                    model,
                    "registered",
                    version=version,
                    digest=digest,
                    actor=actor,
                    reason=f"artifact stored at {path} in the artifact store",
                )
        return self.version(model, same[0] if same else version), not same

    def record(self, model: str, event: str, **fields: Any) -> Event:
        """Append a ledger event that moves no alias (blocked, refused, gated, canary steps).

        Fault points: `record:<event>:before_commit`, `record:<event>:after_commit`.
        """
        with self._write() as connection:
            recorded = self._append(connection, model, event, **fields)
            fault_point(f"record:{event}:before_commit")
        fault_point(f"record:{event}:after_commit")
        return recorded

    def move_production(
        self,
        model: str,
        version: str,
        *,
        expected: str | None,
        event: str,
        step: str,
        **fields: Any,
    ) -> Event | None:
        """Compare-and-set `production` to `version`, with its ledger event, in one transaction.

        Returns None when `version` is already in production (a retried command does nothing);
        raises ConflictError when production is no longer `expected` (another process won).
        `step` names the fault points (`<step>:before_alias` … `<step>:after_commit`).
        """
        with self._write() as connection:
            rows = connection.execute(
                "SELECT digest FROM model_versions WHERE model = ? AND version = ?",
                [model, version],
            ).fetchall()
            if not rows:
                raise NotFoundError(f"model {model!r} has no registered version {version!r}")
            current = self._alias_rows_in(connection, model).get(PRODUCTION)
            if current == version:
                return None
            if current != expected:
                raise ConflictError(
                    f"{model}: production is {current!r}, not {expected!r} as this {event} "
                    "expected; another promotion or rollback won the race. Check "
                    "`ml-release status` and retry if still wanted."
                )
            fault_point(f"{step}:before_alias")
            connection.execute(
                "INSERT INTO aliases (model, alias, version, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version, "
                "updated_at = excluded.updated_at",
                [model, PRODUCTION, version, datetime.now(UTC)],
            )
            fault_point(f"{step}:after_alias")
            recorded = self._append(
                connection,
                model,
                event,
                version=version,
                digest=rows[0][0],
                from_version=current,
                **fields,
            )
            fault_point(f"{step}:before_commit")
        fault_point(f"{step}:after_commit")
        return recorded

    @staticmethod
    def _alias_rows_in(connection: Connection, model: str) -> dict[str, str]:
        rows = connection.execute(
            "SELECT alias, version FROM aliases WHERE model = ?", [model]
        ).fetchall()
        return dict(rows)

    def problems(self, model: str) -> list[str]:
        """Disagreements between alias, versions and ledger, and gaps in the sequence."""
        found = super().problems(model)
        with self.backend.read() as connection:
            seqs = [
                r[0] for r in connection.execute("SELECT seq FROM ledger ORDER BY seq").fetchall()
            ]
        if seqs != list(range(1, len(seqs) + 1)):
            found.append("ledger sequence has gaps or duplicates")
        return found
