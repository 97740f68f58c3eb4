"""Names of assets, groups, checks, jobs and pools, in one place.

Plain strings (no Dagster import) so the core, the spec and the Dagster glue share them.
"""

# Groups.
DATA_GROUP = "data"
FEATURES_GROUP = "features"

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

# Datasets a data-contract gate may target; the reference is always the training features.
CONTRACT_DATASETS = (EVALUATION_FEATURES, SERVING_FEATURES_RECOMPUTED)
CONTRACT_REFERENCE = TRAINING_FEATURES

# Warehouse bookkeeping table holding the reference profile of each feature table.
PROFILES_TABLE = "_reference_profiles"

# Jobs and concurrency pools.
RELEASE_JOB = "release"
WAREHOUSE_POOL = "warehouse"
