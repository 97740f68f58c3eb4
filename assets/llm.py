"""The LLM release graph (`model.task: llm`): RAG set, prompt/config candidate, report."""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.partitions import candidates
from ml_release import keys
from ml_release.candidates import candidate_of_partition
from ml_release.evaluation.report import write_image
from ml_release.gates.store import store_results
from ml_release.home import release_home
from ml_release.llm.candidate import read_config
from ml_release.llm.dataset import load_rag_set
from ml_release.llm.gates import judge, llm_gates
from ml_release.llm.page import gates_markdown, html_page, table_markdown
from ml_release.llm.report import distribution_plot
from ml_release.llm.run import evaluate_release
from ml_release.resource_types import (
    ArtifactInbox,
    Folder,
    LLMClientSource,
    RegistrySource,
    WarehouseSource,
)
from ml_release.spec import ReleaseSpec
from ml_release.subjects import candidate_ref, production_ref

ANSWERS_TABLE = "llm_answers"


class PromptCandidateConfig(dg.Config):
    """Which artifact the run's candidate comes from, when it is not registered yet."""

    artifact: str = Field(
        "",
        description="Artifact folder holding the run's candidate (set by the sensor); empty: "
        "the registered prompt/config whose digest is the run's partition.",
    )


def _rag_path(spec: ReleaseSpec) -> Path:
    return spec.llm.path(spec.llm.dataset, spec.source.parent, release_home())


def _rag_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The RAG set: the corpus and the questions, versioned by its digest."""

    @dg.asset(key=spec.key(keys.RAG_CORPUS), group_name=spec.named(keys.DATA_GROUP), kinds={"json"})
    def rag_corpus() -> dg.MaterializeResult:
        """The documents retrieval draws from, validated; versioned by the RAG set's digest."""
        rag = load_rag_set(_rag_path(spec))
        return dg.MaterializeResult(
            metadata={"passages": len(rag.passages), "path": str(_rag_path(spec))},
            data_version=dg.DataVersion(rag.fingerprint),
        )

    @dg.asset(
        key=spec.key(keys.RAG_QUESTIONS),
        group_name=spec.named(keys.DATA_GROUP),
        deps=[spec.key(keys.RAG_CORPUS)],
        kinds={"json"},
    )
    def rag_questions() -> dg.MaterializeResult:
        """Questions with reference answers and contexts, by route (routes are the segments)."""
        rag = load_rag_set(_rag_path(spec))
        routes = {r: sum(q.route == r for q in rag.questions) for r in rag.routes}
        structured = sorted({q.route for q in rag.questions if q.schema})
        return dg.MaterializeResult(
            metadata={
                "questions": len(rag.questions),
                "routes": dg.MetadataValue.json(routes),
                "structured_routes": ", ".join(structured) or "none",
            },
            data_version=dg.DataVersion(rag.fingerprint),
        )

    return [rag_corpus, rag_questions]


def _candidate_asset(spec: ReleaseSpec) -> dg.AssetsDefinition:
    """candidate_model of an LLM spec: the run's prompt/config."""

    @dg.asset(
        key=spec.key(keys.CANDIDATE_MODEL),
        group_name=spec.named(keys.MODELS_GROUP),
        partitions_def=candidates(spec),
        pool=spec.named(keys.WAREHOUSE_POOL),
        kinds={"json"},
    )
    def candidate_model(
        context: dg.AssetExecutionContext,
        config: PromptCandidateConfig,
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        artifact_inbox: dg.ResourceParam[ArtifactInbox],
    ):
        """The run's candidate prompt/config (partition = its digest), verified."""
        candidate = candidate_of_partition(
            spec,
            context.partition_key,
            model_registry.get(),
            Path(artifact_store.path),
            artifact_inbox.folders(),
            config.artifact,
        )
        prompt = read_config(candidate.folder, candidate.digest)
        context.log.info(f"candidate prompt {candidate.version} ({candidate.digest[:12]})")
        return dg.MaterializeResult(
            metadata={
                keys.CANDIDATE_VERSION: candidate.version,
                keys.CANDIDATE_DIGEST: candidate.digest,
                keys.PROMPT_VERSION: prompt.version,
                "source": candidate.source,
                "llm_model": prompt.model,
                "newly_registered": candidate.newly_registered,
                "artifact": dg.MetadataValue.path(str(candidate.folder)),
                "config": dg.MetadataValue.json(prompt.model_dump(mode="json")),
            },
            data_version=dg.DataVersion(candidate.digest),
        )

    return candidate_model


def build_llm_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The RAG set, the candidate prompt/config and llm_evaluation_report for an LLM spec."""
    llm = spec.llm

    @dg.asset(
        key=spec.key(keys.LLM_EVALUATION_REPORT),
        deps=[
            spec.key(keys.CANDIDATE_MODEL),
            spec.key(keys.RAG_CORPUS),
            spec.key(keys.RAG_QUESTIONS),
        ],
        group_name=spec.named(keys.EVALUATION_GROUP),
        partitions_def=candidates(spec),
        pool=spec.named(keys.WAREHOUSE_POOL),
        kinds={"duckdb", "html"},
    )
    def llm_evaluation_report(
        context: dg.AssetExecutionContext,
        warehouse: dg.ResourceParam[WarehouseSource],
        model_registry: dg.ResourceParam[RegistrySource],
        artifact_store: dg.ResourceParam[Folder],
        report_store: dg.ResourceParam[Folder],
        llm_client: dg.ResourceParam[LLMClientSource],
    ):
        """Candidate and production prompt/configs on the same questions, per route."""
        registry = model_registry.get()
        store = Path(artifact_store.path)
        ref = candidate_ref(registry, store, spec.model.name, context.partition_key)
        candidate = read_config(ref.folder, ref.digest)
        live = production_ref(registry, store, spec.model.name)
        production = read_config(live.folder, live.digest) if live else None
        rag = load_rag_set(_rag_path(spec))
        gates = llm_gates(spec)
        client = llm_client
        needs_judge = any(g.name == "llm_judge_faithfulness" for g in gates)
        report = evaluate_release(
            rag,
            candidate,
            production,
            client.client(),
            llm,
            client.judge() if needs_judge else None,
        )
        results = [judge(gate, report, spec) for gate in gates]
        for result in results:
            result.baseline_digest = live.digest if live else "none"
            result.data_version = rag.fingerprint
        warehouse = warehouse.get(spec.model.name)
        store_results(warehouse, context.run.run_id, [g.id for g in gates], results)
        frames = [report.candidate.assign(role="candidate")]
        if report.production is not None:
            frames.append(report.production.assign(role="production"))
        table = f"{ANSWERS_TABLE}__{ref.digest[:24]}"  # one table per candidate, like predictions
        warehouse.replace_from_frame(table, pd.concat(frames, ignore_index=True))
        plot = distribution_plot(report)
        folder = Path(report_store.path) / context.run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        page = folder / "llm_evaluation.html"
        page.write_text(html_page(f"{spec.model.name}: LLM evaluation", report, results, plot))
        return dg.MaterializeResult(
            metadata={
                "production": live.version if live else "none (first release)",
                keys.BASELINE_DIGEST: live.digest if live else "none",
                keys.PROMPT_VERSION: candidate.version,
                "gates": dg.MetadataValue.md(gates_markdown(results)),
                "per_route": dg.MetadataValue.md(table_markdown(report.route_table())),
                "worst_answers": dg.MetadataValue.md(
                    table_markdown(report.flagged_answers(), "_no answer flagged_")
                ),
                "token_latency_distributions": dg.MetadataValue.path(
                    str(write_image(folder, "token_latency_distributions", plot))
                ),
                "html_report": dg.MetadataValue.path(str(page)),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return [*_rag_assets(spec), _candidate_asset(spec), llm_evaluation_report]
