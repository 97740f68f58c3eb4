"""The release spec's sections that say how each stage is measured.

The contract's ranges and rates, evaluation, serving, shadow replay, coverage and the canary;
`ml_release.spec` composes them into `ReleaseSpec`.
"""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ml_release.spec_data import SpecModel


class RangeSpec(SpecModel):
    """An explicit allowed range for a numeric feature."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "RangeSpec":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}): swap them")
        return self


class ContractSpec(SpecModel):
    """Column-level facts of the data contract; gate thresholds live on the gates."""

    null_rate: dict[str, float] = Field(
        default_factory=dict, description="Per-column null-rate limits."
    )
    ranges: dict[str, RangeSpec] = Field(default_factory=dict)
    categories: dict[str, list[str]] = Field(
        default_factory=dict, description="Allowed categories; others are inferred."
    )

    @field_validator("null_rate")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for column, rate in value.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"null-rate limit for {column!r} is {rate}: use a share in [0, 1]")
        return value


class EvaluationSpec(SpecModel):
    """How candidate and baseline are scored and compared (see docs/statistics.md)."""

    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Score at or above which a row is predicted positive."
    )
    bootstrap_resamples: int = Field(
        1000, ge=100, le=20_000, description="Paired bootstrap resamples where no exact method."
    )
    seed: int = Field(0, description="Seed of the bootstrap: verdicts are reproducible.")
    little_bootstrap_above: int | None = Field(
        50_000,
        ge=10_000,
        description=(
            "Rows above which PR-AUC and ECE intervals use the bag of little bootstraps "
            "(subsets of n^0.7 rows) instead of resampling all n rows; null: never."
        ),
    )


class ServingSpec(SpecModel):
    """How `serving_report` measures the candidate and production in the serving runtime."""

    requests: int = Field(
        300, ge=20, le=100_000, description="Single requests per server after the warm-up."
    )
    warmup: int = Field(30, ge=0, le=10_000, description="Unmeasured requests per server first.")
    batch_sizes: list[int] = Field(
        default_factory=lambda: [32, 256],
        min_length=1,
        description="Batch sizes whose latency and throughput are measured.",
    )
    batch_repeats: int = Field(10, ge=1, le=1000, description="Requests per batch size.")
    ready_timeout: float = Field(
        120.0, gt=0, description="Seconds a server may take to load before it counts as failed."
    )
    max_request_bytes: int = Field(
        64 * 1024**2, ge=1024, description="Larger request bodies get a 413 from the server."
    )
    max_rows: int = Field(10_000, ge=1, description="Larger batches get a 400 from the server.")
    seed: int = Field(0, description="Seed of the sample of evaluation rows sent.")

    @model_validator(mode="after")
    def _batches_fit(self) -> "ServingSpec":
        too_big = [b for b in self.batch_sizes if not 1 <= b <= self.max_rows]
        if too_big:
            raise ValueError(f"batch_sizes {too_big} must be between 1 and max_rows")
        return self


class ShadowSpec(SpecModel):
    """Which logged production requests `shadow_report` replays, and how."""

    requests: int = Field(
        2000, ge=10, le=1_000_000, description="The most recent logged requests replayed."
    )
    window_days: float | None = Field(
        None, gt=0, description="Only requests this recent (by the log's timestamp)."
    )
    concurrency: int = Field(4, ge=1, le=64, description="Requests in flight per model.")
    timeout_seconds: float = Field(
        5.0, gt=0, description="A slower answer counts as an error of that model."
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=1000,
        description="Logged requests per replayed request. 1 replays each request exactly as "
        "production received it; more replays the window in batches (many times faster; "
        "batch-versus-single differences are the serving gate batch_single_agreement's job), "
        "and a batch that fails is re-sent one request at a time so each request gets its own "
        "status.",
    )
    latency_requests: int = Field(
        300,
        ge=10,
        description="With batch_size > 1, this many requests, spread evenly over the window, "
        "are also sent one at a time: the latency gate's sample.",
    )


class CoverageSpec(SpecModel):
    """What `ml-release coverage` must prove about this spec's gates (docs/coverage.md)."""

    required: list[str] | Literal["all"] = Field(
        "all",
        description="Failure modes some must_pass gate has to block; `all` means every mode "
        "that applies to the spec. `ml-release coverage` exits 1 when one is not blocked.",
    )

    def required_modes(self, applicable: list[str]) -> list[str]:
        """The required modes among those that apply."""
        return list(applicable) if self.required == "all" else list(self.required)


class CanarySpec(SpecModel):
    """The canary rollout: traffic steps, how much traffic each step replays, and its margins."""

    enabled: bool = Field(
        False,
        description="When true, release_decision does not promote: a candidate that passed "
        "every offline gate is promoted by canary_rollout after the last step.",
    )
    steps: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        min_length=1,
        description="Percent of traffic to the candidate at each step, increasing, ending at 100.",
    )
    requests_per_step: int = Field(
        1000, ge=10, description="Logged requests replayed through the router per step."
    )
    concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Requests in flight. One server per model on one machine: more than 1 "
        "queues requests at the busier server and biases the latency comparison.",
    )
    timeout_seconds: float = Field(
        2.0, gt=0, description="A candidate answer slower than this is an error (a timeout)."
    )
    deadline_seconds: float = Field(
        300.0, gt=0, description="A step not finished by then fails (a hung candidate)."
    )
    error_margin: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Tolerated error-rate increase over production (absolute). The arms are "
        "compared within each step: with 1,000 requests per step and no errors, 0.01 is about "
        "the smallest margin a healthy candidate can be shown to meet.",
    )
    latency_margin: float = Field(
        0.25, ge=0, description="Tolerated increase of the mean log latency, as a share."
    )
    quality_margin: float | None = Field(
        None,
        ge=0,
        description="Tolerated increase of the per-request loss (log loss; a regression's "
        "absolute error) on requests whose label arrives during the canary; null (default): "
        "off. With a margin and no label by the last step: inconclusive, never a pass.",
    )
    score_shift_margin: float = Field(
        0.05, ge=0, description="Tolerated shift of the mean score, either way (docs/canary.md)."
    )
    alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="False-abort bound over all looks and all comparisons together (each of "
        "the k comparisons gets alpha / k).",
    )

    @model_validator(mode="after")
    def _increasing(self) -> "CanarySpec":
        steps = self.steps
        if any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)) or steps[-1] != 100:
            raise ValueError(f"steps {steps} must increase, each in (0, 100], and end at 100")
        return self
