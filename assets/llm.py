"""The LLM release graph (`model.task: llm`): RAG set, prompt/config candidate, report."""

from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from ml_release import keys
from ml_release.evaluation.report import image_markdown
from ml_release.gates.store import store_results
from ml_release.home import release_home
from ml_release.jobs import latest_candidate
from ml_release.llm.candidate import gate_candidate, read_config
from ml_release.llm.dataset import load_rag_set
from ml_release.llm.gates import judge, llm_gates
from ml_release.llm.page import gates_markdown, html_page, table_markdown
from ml_release.llm.report import distribution_plot
from ml_release.llm.run import evaluate_release
from ml_release.registry import PRODUCTION
from ml_release.spec import ReleaseSpec

ANSWERS_TABLE = "llm_answers"


class PromptCandidateConfig(dg.Config):
    """Which prompt/config to gate."""

    artifact: str = Field(
        "",
        description="Artifact folder (set by the sensor) or prompt/config file to gate; "
        "empty: the spec's llm.candidate.",
    )


def _rag_path(spec: ReleaseSpec) -> Path:
    return spec.llm.path(spec.llm.dataset, spec.source.parent, release_home())


def build_llm_assets(spec: ReleaseSpec) -> list[dg.AssetsDefinition]:
    """The RAG set, the candidate prompt/config and llm_evaluation_report for an LLM spec."""
    llm = spec.llm

    @dg.asset(name=keys.RAG_CORPUS, group_name=keys.DATA_GROUP, kinds={"json"})
    def rag_corpus() -> dg.MaterializeResult:
        """The documents retrieval draws from, validated; versioned by the RAG set's digest."""
        rag = load_rag_set(_rag_path(spec))
        return dg.MaterializeResult(
            metadata={"passages": len(rag.passages), "path": str(_rag_path(spec))},
            data_version=dg.DataVersion(rag.fingerprint),
        )

    @dg.asset(
        name=keys.RAG_QUESTIONS, group_name=keys.DATA_GROUP, deps=[keys.RAG_CORPUS], kinds={"json"}
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

    @dg.asset(
        name=keys.CANDIDATE_MODEL,
        group_name=keys.MODELS_GROUP,
        required_resource_keys={"model_registry", "artifact_store"},
        pool=keys.WAREHOUSE_POOL,
        kinds={"json"},
    )
    def candidate_model(context: dg.AssetExecutionContext, config: PromptCandidateConfig):
        """The candidate prompt/config, stored and registered; identified by its digest."""
        source = (
            Path(config.artifact)
            if config.artifact
            else llm.path(llm.candidate, spec.source.parent, release_home())
        )
        candidate, prompt = gate_candidate(
            source,
            spec.model.name,
            Path(context.resources.artifact_store.path),
            context.resources.model_registry.get(),
            spec.spec_hash,
        )
        context.log.info(f"candidate prompt {candidate.version} ({candidate.digest[:12]})")
        return dg.MaterializeResult(
            metadata={
                keys.CANDIDATE_VERSION: candidate.version,
                keys.CANDIDATE_DIGEST: candidate.digest,
                keys.PROMPT_VERSION: prompt.version,
                "source": str(source),
                "llm_model": prompt.model,
                "newly_registered": candidate.newly_registered,
                "artifact": dg.MetadataValue.path(str(candidate.folder)),
                "config": dg.MetadataValue.json(prompt.model_dump(mode="json")),
            },
            data_version=dg.DataVersion(candidate.digest),
        )

    @dg.asset(
        name=keys.LLM_EVALUATION_REPORT,
        deps=[keys.CANDIDATE_MODEL, keys.RAG_CORPUS, keys.RAG_QUESTIONS],
        group_name=keys.EVALUATION_GROUP,
        pool=keys.WAREHOUSE_POOL,
        required_resource_keys={"warehouse", "model_registry", "report_store", "llm_client"},
        kinds={"duckdb", "html"},
    )
    def llm_evaluation_report(context: dg.AssetExecutionContext):
        """Candidate and production prompt/configs on the same questions, per route."""
        registry = context.resources.model_registry.get()
        version, _digest = latest_candidate(context.instance)
        candidate = read_config(Path(registry.version(spec.model.name, version).path))
        live = registry.alias(spec.model.name, PRODUCTION)
        production = (
            read_config(Path(registry.version(spec.model.name, live).path)) if live else None
        )
        gates = llm_gates(spec)
        client = context.resources.llm_client
        needs_judge = any(g.name == "llm_judge_faithfulness" for g in gates)
        report = evaluate_release(
            load_rag_set(_rag_path(spec)),
            candidate,
            production,
            client.client(),
            llm,
            client.judge() if needs_judge else None,
        )
        results = [judge(gate, report, spec) for gate in gates]
        warehouse = context.resources.warehouse.get()
        store_results(warehouse, context.run.run_id, results)
        frames = [report.candidate.assign(role="candidate")]
        if report.production is not None:
            frames.append(report.production.assign(role="production"))
        warehouse.replace_from_frame(ANSWERS_TABLE, pd.concat(frames, ignore_index=True))
        plot = distribution_plot(report)
        folder = Path(context.resources.report_store.path) / context.run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        page = folder / "llm_evaluation.html"
        page.write_text(html_page(f"{spec.model.name}: LLM evaluation", report, results, plot))
        return dg.MaterializeResult(
            metadata={
                "production": live or "none (first release)",
                keys.PROMPT_VERSION: candidate.version,
                "gates": dg.MetadataValue.md(gates_markdown(results)),
                "per_route": dg.MetadataValue.md(table_markdown(report.route_table())),
                "worst_answers": dg.MetadataValue.md(
                    table_markdown(report.flagged_answers(), "_no answer flagged_")
                ),
                "token_latency_distributions": dg.MetadataValue.md(
                    image_markdown(plot, "tokens and latency")
                ),
                "html_report": dg.MetadataValue.path(str(page)),
                keys.SPEC_HASH: spec.spec_hash,
            }
        )

    return [rag_corpus, rag_questions, candidate_model, llm_evaluation_report]
