"""The model registry and its append-only ledger, in `ML_RELEASE_HOME/registry.duckdb`.

- `model_versions`: one row per (model, version), one version per digest. Registering the same
  artifact twice is idempotent; the same version with another digest is a conflict.
- `aliases`: `production` and `previous` per model. They move only by compare-and-set inside one
  transaction that also appends the ledger event, so alias and ledger always agree: a crash at
  any step leaves either the state before or the state after, never a half.
- `ledger`: every registration, promotion, block and rollback with time, actor, reason, spec
  hash, verdicts and lineage. Sequence numbers have no gaps; nothing is updated or deleted.
"""

import getpass
import json
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml_release.dbfile import DuckDBFile, one
from ml_release.errors import ConflictError, NotFoundError
from ml_release.faults import crash_point

PRODUCTION = "production"
PREVIOUS = "previous"
PRODUCTION_EVENTS = ("promoted", "rolled_back")

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


@dataclass(frozen=True)
class Version:
    """A registered model version."""

    model: str
    version: str
    digest: str
    path: str
    manifest: dict[str, Any]
    registered_at: datetime


@dataclass(frozen=True)
class Event:
    """One ledger row."""

    seq: int
    recorded_at: datetime
    model: str
    event: str
    actor: str
    version: str | None
    digest: str | None
    from_version: str | None = None
    reason: str | None = None
    spec_hash: str | None = None
    verdicts: list[dict] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)


def default_actor() -> str:
    """Who is acting: the OS user (CI systems set USER too)."""
    try:
        return getpass.getuser()
    except OSError:  # no user database entry in some containers
        return "unknown"


def _event(row: tuple) -> Event:
    *head, verdicts, lineage = row
    return Event(*head, verdicts=json.loads(verdicts or "[]"), lineage=json.loads(lineage or "{}"))


_EVENT_COLUMNS = (
    "seq, recorded_at, model, event, actor, version, digest, from_version, reason, spec_hash, "
    "verdicts, lineage"
)


class Registry(DuckDBFile):
    """Model versions, aliases and the ledger; every write is one short transaction."""

    def __init__(self, path: Path | str, lock_timeout: float = 30.0) -> None:
        super().__init__(path, lock_timeout)
        with self.transaction() as connection:
            for statement in SCHEMA:
                connection.execute(statement)

    # -- reading ------------------------------------------------------------------------------
    def version(self, model: str, version: str) -> Version:
        """A registered version, or NotFoundError listing what exists."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT model, version, digest, path, manifest, registered_at FROM model_versions "
                "WHERE model = ? AND version = ?",
                [model, version],
            ).fetchall()
        if not rows:
            known = [v.version for v in self.versions(model)][-5:]
            raise NotFoundError(
                f"model {model!r} has no version {version!r} in {self.path}. "
                f"Latest registered: {', '.join(known) or 'none'}."
            )
        *head, manifest, at = rows[0]
        return Version(*head, manifest=json.loads(manifest), registered_at=at)

    def versions(self, model: str) -> list[Version]:
        """Every registered version of `model`, oldest first."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT model, version, digest, path, manifest, registered_at FROM model_versions "
                "WHERE model = ? ORDER BY registered_at, version",
                [model],
            ).fetchall()
        return [Version(*r[:4], manifest=json.loads(r[4]), registered_at=r[5]) for r in rows]

    def alias(self, model: str, alias: str = PRODUCTION) -> str | None:
        """The version an alias names, or None."""
        with self.connect() as connection:
            return self._alias(connection, model, alias)

    @staticmethod
    def _alias(connection, model: str, alias: str) -> str | None:
        rows = connection.execute(
            "SELECT version FROM aliases WHERE model = ? AND alias = ?", [model, alias]
        ).fetchall()
        return rows[0][0] if rows else None

    def events(self, model: str, kinds: tuple[str, ...] | None = None) -> list[Event]:
        """Ledger events of `model` in order, optionally only some kinds."""
        sql = f"SELECT {_EVENT_COLUMNS} FROM ledger WHERE model = ?"
        params: list[Any] = [model]
        if kinds:
            sql += f" AND event IN ({', '.join('?' for _ in kinds)})"
            params += list(kinds)
        with self.connect() as connection:
            rows = connection.execute(sql + " ORDER BY seq", params).fetchall()
        return [_event(r) for r in rows]

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _append(connection, model: str, event: str, **fields: Any) -> Event:
        seq = int(one(connection, "SELECT coalesce(max(seq), 0) + 1 FROM ledger")[0])
        values = {
            "version": None,
            "digest": None,
            "from_version": None,
            "reason": None,
            "spec_hash": None,
            "verdicts": [],
            "lineage": {},
            "actor": default_actor(),
        } | fields
        record = Event(seq, datetime.now(UTC), model, event, **values)
        *head, verdicts, lineage = astuple(record)
        connection.execute(
            f"INSERT INTO ledger ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 12)})",
            [*head, json.dumps(verdicts, default=str), json.dumps(lineage, default=str)],
        )
        return record

    def register(
        self, model: str, version: str, digest: str, path: str, manifest: dict, actor: str = ""
    ) -> tuple[Version, bool]:
        """Register an artifact; returns (version, created). Idempotent per digest."""
        with self.transaction() as connection:
            rows = connection.execute(
                "SELECT version, digest FROM model_versions WHERE model = ? "
                "AND (version = ? OR digest = ?)",
                [model, version, digest],
            ).fetchall()
            same = [v for v, d in rows if d == digest]
            if same:
                return self.version(model, same[0]), False
            if rows:
                raise ConflictError(
                    f"{model} version {version!r} is already registered with digest "
                    f"{rows[0][1][:12]}, and this artifact has {digest[:12]}. A version is "
                    "immutable: publish the new model under another version."
                )
            connection.execute(
                "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?, ?)",
                [model, version, digest, path, json.dumps(manifest), datetime.now(UTC)],
            )
            self._append(
                connection,
                model,
                "registered",
                version=version,
                digest=digest,
                actor=actor or default_actor(),
                reason=f"artifact at {path}",
            )
        return self.version(model, version), True

    def record(self, model: str, event: str, **fields: Any) -> Event:
        """Append a ledger event that moves no alias (gated, blocked, canary steps)."""
        with self.transaction() as connection:
            return self._append(connection, model, event, **fields)

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
        """Compare-and-set `production` to `version` (and `previous` to the old one).

        Returns None when `version` is already in production (a retried command does nothing);
        raises ConflictError when production is no longer `expected` (another process won).
        """
        with self.transaction() as connection:
            rows = connection.execute(
                "SELECT digest FROM model_versions WHERE model = ? AND version = ?",
                [model, version],
            ).fetchall()
            if not rows:
                raise NotFoundError(f"model {model!r} has no registered version {version!r}")
            current = self._alias(connection, model, PRODUCTION)
            if current == version:
                return None
            if current != expected:
                raise ConflictError(
                    f"{model}: production is {current!r}, not {expected!r} as this {event} "
                    "expected; another promotion or rollback won the race. Check "
                    "`ml-release status` and retry if still wanted."
                )
            crash_point(f"{step}:before_alias")
            now = datetime.now(UTC)
            upsert = "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?, ?)"
            if current is not None:
                connection.execute(upsert, [model, PREVIOUS, current, now])
            connection.execute(upsert, [model, PRODUCTION, version, now])
            crash_point(f"{step}:after_alias")
            recorded = self._append(
                connection,
                model,
                event,
                version=version,
                digest=rows[0][0],
                from_version=current,
                **fields,
            )
            crash_point(f"{step}:before_commit")
        crash_point(f"{step}:after_commit")
        return recorded

    # -- consistency --------------------------------------------------------------------------
    def problems(self, model: str) -> list[str]:
        """Disagreements between aliases, versions and the ledger (empty when consistent)."""
        production = self.alias(model, PRODUCTION)
        changes = self.events(model, PRODUCTION_EVENTS)
        found = []
        if production is not None:
            try:
                self.version(model, production)
            except NotFoundError:
                found.append(f"production names unregistered version {production!r}")
        last = changes[-1].version if changes else None
        if last != production:
            found.append(f"ledger says {last!r} is in production, alias says {production!r}")
        with self.connect() as connection:
            seqs = [
                r[0] for r in connection.execute("SELECT seq FROM ledger ORDER BY seq").fetchall()
            ]
        if seqs != list(range(1, len(seqs) + 1)):
            found.append("ledger sequence has gaps or duplicates")
        return found
