"""The canary's vocabulary: a weighted, sticky split of a model's traffic, and what it served.

A canary sends a share of a model's traffic (0-100 %) to the candidate server and the rest to
production. `TrafficSplit` is that seam: set the weight, read back what each backend served
(`RouteRecord`). A deployment implements it over its platform (KServe's
`canaryTrafficPercent`, an Argo Rollouts `setWeight` step); on one machine the local proxy
(`ml_release.serving.router.LocalRouter`) plays that part.

Routing is by request id: `request_bucket` is a stable hash of the id modulo 10,000, and a
request goes to the candidate when its bucket is below `weight * 100` (`backend_for`). The same
id always goes to the same backend at a given weight, and raising the weight only moves ids
from production to the candidate, never back.
"""

import abc
import hashlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

CANDIDATE = "candidate"
PRODUCTION = "production"
TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"
BUCKETS = 10_000
REQUEST_ID_HEADER = "X-Request-Id"


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """What one routed inference request got.

    Attributes:
        request_id: The id the request was routed by.
        backend: "candidate" or "production": where the split sent it.
        status: That backend's HTTP status, or "timeout" / "connection_error".
        latency_s: Seconds of that backend's round trip, as the router saw it.
        probabilities: The 200 response's `proba_*` outputs (a regressor's: `prediction`), output
            name to values; else None.
        timestamp: Wall-clock time (`time.time()`) the router received the request.
        fallback_status: Production's status (or "timeout" / "connection_error") when a failed
            candidate request was retried on production; None otherwise.
    """

    request_id: str
    backend: str
    status: int | str
    latency_s: float
    probabilities: dict[str, list[float]] | None
    timestamp: float
    fallback_status: int | str | None = None

    @property
    def error(self) -> bool:
        """A timeout, a connection error, or a status other than 2xx."""
        return not (isinstance(self.status, int) and 200 <= self.status < 300)


class TrafficSplit(abc.ABC):
    """The split between production and a candidate, and what each of them served.

    Implemented on one machine by `LocalRouter`. A deployment would implement it over its
    platform: `set_weight` patching KServe's `canaryTrafficPercent` (or an Argo Rollouts
    `setWeight` step), `records` reading the platform's inference logs.
    """

    @property
    def url(self) -> str:
        """Base URL callers send inference requests to, through the split.

        The canary replays the logged requests there. A platform's split answers its inference
        endpoint; a split that only reports (a test's simulated one) has none.
        """
        raise NotImplementedError(f"{type(self).__name__} takes no requests of its own")

    @property
    @abc.abstractmethod
    def weight(self) -> float:
        """Percent of inference requests routed to the candidate (0-100)."""

    @abc.abstractmethod
    def set_weight(self, percent: float) -> None:
        """Route `percent` % (0-100) of the inference requests to the candidate from now on.

        Raises:
            ValueError: `percent` is not a number from 0 to 100.
        """

    @abc.abstractmethod
    def mark(self) -> int:
        """A marker: `records(since=marker)` returns only the requests completed after it."""

    @abc.abstractmethod
    def records(
        self, since: int = 0, start: float | None = None, end: float | None = None
    ) -> list[RouteRecord]:
        """The routed inference requests completed so far, in order of completion.

        Args:
            since: A marker from `mark()`; 0 for every record.
            start: Only requests received at or after this wall-clock time (`time.time()`).
            end: Only requests received before this wall-clock time.
        """


def request_bucket(request_id: str) -> int:
    """The id's bucket, 0 to 9,999: a stable hash (BLAKE2b), the same in every process."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def backend_for(request_id: str, weight: float) -> str:
    """The backend an inference request with this id goes to at `weight` percent."""
    return CANDIDATE if request_bucket(request_id) < weight * 100 else PRODUCTION


def checked_weight(percent: float) -> float:
    """`percent` as a float, if it is a percentage from 0 to 100 (else ValueError)."""
    value = float(percent)
    if not 0.0 <= value <= 100.0:  # NaN fails too
        raise ValueError(f"weight {percent!r}: expected a percentage from 0 to 100")
    return value


class SplitOpener(Protocol):
    """Opens the split between two running servers for the length of a canary.

    The canary calls it with production's and the candidate's HTTP ports, the model name and
    the candidate's timeout, and uses the split inside the `with` block. The local router is
    the default (`resources.TrafficSplitResource`); a deployment supplies its platform's.
    """

    def __call__(
        self, production_port: int, candidate_port: int, model: str, timeout_s: float
    ) -> AbstractContextManager[TrafficSplit]:
        """The split, as a context manager that tears it down at the end."""
        ...
