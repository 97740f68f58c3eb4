"""Names of assets, groups, checks, jobs and pools, in one place.

Plain strings (no Dagster import) so the core, the spec and the Dagster glue share them.
"""

# Groups.
DATA_GROUP = "data"
EVALUATION_GROUP = "evaluation"
FEATURES_GROUP = "features"
MODELS_GROUP = "models"
RELEASE_GROUP = "release"

# Data assets: raw datasets copied into the warehouse.
TRAINING_SNAPSHOT = "training_snapshot"
EVALUATION_HOLDOUT = "evaluation_holdout"
SERVING_LOG = "serving_log"

# Feature assets: the shared feature code applied to each dataset.
TRAINING_FEATURES = "training_features"
EVALUATION_FEATURES = "evaluation_features"
SERVING_FEATURES_RECOMPUTED = "serving_features_recomputed"

# The raw dataset each feature table is computed from.
FEATURE_SOURCES = {
    TRAINING_FEATURES: TRAINING_SNAPSHOT,
    EVALUATION_FEATURES: EVALUATION_HOLDOUT,
    SERVING_FEATURES_RECOMPUTED: SERVING_LOG,
}

# Model and release assets. `production_model` is what production is; every promotion,
# override and rollback materializes it.
CANDIDATE_MODEL = "candidate_model"
PRODUCTION_MODEL = "production_model"
RELEASE_DECISION = "release_decision"
CANARY_ROLLOUT = "canary_rollout"
CANDIDATE_PREDICTIONS = "candidate_predictions"
BASELINE_PREDICTIONS = "baseline_predictions"
EVALUATION_REPORT = "evaluation_report"
SERVING_REPORT = "serving_report"
SHADOW_REPORT = "shadow_report"

# Metadata keys every gate result carries to tie it to what it judged: the candidate, the
# production model it compared against, the spec and the data.
CANDIDATE_DIGEST = "candidate_digest"
CANDIDATE_VERSION = "candidate_version"
BASELINE_DIGEST = "baseline_digest"
BASELINE_VERSION = "baseline_version"
DATA_VERSION = "data_version"
SPEC_HASH = "spec_hash"
# A check is named by its gate entry's id; these say which catalog gate it is and what it
# judged (`holdout`, `serving`, or its dataset), so one gate name can run on several sets.
GATE_NAME = "gate"
EVAL_SET = "eval_set"

# Every release run gates one candidate: its Dagster partition key is the candidate's digest.
PARTITION_TAG = "dagster/partition"


def candidates_partitions(model: str) -> str:
    """Name of the dynamic partitions (one per candidate digest) of `model`'s release assets."""
    return f"{model}_candidates"


# Where one code location gates several specs (a folder of them), every model's assets sit
# under its own key prefix (`<model>/evaluation_report`) and its jobs, sensors and pool are
# named `<model>__<name>` (Dagster joins a prefixed key's op name the same way). The scope is
# empty where the location gates one spec: the plain names above.
MODEL_TAG = "ml_release/model"  # on every run of a model's jobs: the run queue limits it


def scoped(scope: str, name: str) -> str:
    """A job, sensor, pool or op name of the model `scope` (`name` itself when unscoped)."""
    return f"{scope}__{name}" if scope else name


def key_path(scope: str, name: str) -> list[str]:
    """The asset key path of asset `name` of the model `scope`."""
    return [scope, name] if scope else [name]


# Datasets a data-contract gate may target; the reference is always the training features.
CONTRACT_DATASETS = (EVALUATION_FEATURES, SERVING_FEATURES_RECOMPUTED)
CONTRACT_REFERENCE = TRAINING_FEATURES

# Warehouse bookkeeping table holding the reference profile of each feature table.
PROFILES_TABLE = "_reference_profiles"

# Jobs and concurrency pools.
RELEASE_JOB = "release"
TRAIN_JOB = "train_candidate"
ROLLBACK_JOB = "rollback"
CANARY_JOB = "canary"
ARTIFACT_SENSOR = "new_model_artifact_sensor"
BLOCKED_RUN_SENSOR = "blocked_release_sensor"
WAREHOUSE_POOL = "warehouse"

# The LLM release graph (`model.task: llm`): the RAG set, and the report judging the answers.
RAG_CORPUS = "rag_corpus"
RAG_QUESTIONS = "rag_questions"
LLM_EVALUATION_REPORT = "llm_evaluation_report"
LLM_DATASETS = (RAG_CORPUS, RAG_QUESTIONS)
PROMPT_VERSION = "prompt_version"

# Environment variables of a distributed deployment: a release run's steps go to Celery workers
# through this broker (and this result backend, default: the broker) when it is set.
CELERY_BROKER_ENV = "ML_RELEASE_CELERY_BROKER"
CELERY_BACKEND_ENV = "ML_RELEASE_CELERY_BACKEND"
