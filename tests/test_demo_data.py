"""The demo data: deterministic, realistic, learnable; the injectors do one thing each."""

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from ml_release.demo import scenarios
from ml_release.demo.features import CATEGORICAL, NUMERIC, compute_features
from ml_release.demo.generate import generate


def test_same_seed_same_data(demo):
    again = generate(seed=11, n_training=6000, n_evaluation=3000, n_serving=2000)
    assert again.training.equals(demo.training)
    assert again.serving_log.equals(demo.serving_log)
    assert not generate(seed=12, n_training=6000).training.equals(demo.training)


def test_shape_of_the_problem(demo):
    assert len(NUMERIC) + len(CATEGORICAL) >= 8
    assert demo.training["postal_district"].nunique() > 100  # one high-cardinality feature
    assert demo.training["region"].nunique() + demo.training["channel"].nunique() >= 6
    assert 0.05 < demo.training["defaulted"].mean() < 0.5
    labelled = demo.serving_log["defaulted"].notna()
    assert 0.3 < labelled.mean() < 0.9  # labels arrive later: the newest rows have none


def test_label_is_learnable_from_the_features(demo):
    def matrix(raw):
        return compute_features(raw)[NUMERIC].fillna(0).to_numpy()

    model = LogisticRegression(max_iter=1000).fit(matrix(demo.training), demo.training["defaulted"])
    scores = model.predict_proba(matrix(demo.evaluation))[:, 1]
    assert roc_auc_score(demo.evaluation["defaulted"], scores) > 0.7


def test_serving_log_drifts_mildly(demo):
    log = demo.serving_log
    first, last = log.iloc[: len(log) // 3], log.iloc[-len(log) // 3 :]
    share = lambda part: part["request"].str.contains('"channel": "mobile"').mean()  # noqa: E731
    assert share(last) > share(first)


def test_injectors_change_only_what_they_say(demo):
    frame = demo.evaluation
    flooded = scenarios.null_flood(frame, "annual_income", rate=0.25)
    assert 0.2 < flooded["annual_income"].isna().mean() < 0.3
    assert flooded.drop(columns="annual_income").equals(frame.drop(columns="annual_income"))
    renamed = scenarios.rename_column(frame, "balance", "balanse")
    assert "balanse" in renamed and "balance" not in renamed
    assert scenarios.change_dtype(frame, "age")["age"].dtype == "string"
    shifted = scenarios.distribution_shift(frame, "loan_amount")
    assert shifted["loan_amount"].mean() > frame["loan_amount"].mean()


def test_cli_scenario_names_match_the_injectors():
    from ml_release.cli import SCENARIO_NAMES

    assert set(SCENARIO_NAMES) == set(scenarios.SCENARIOS)
