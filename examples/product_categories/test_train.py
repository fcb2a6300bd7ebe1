"""Unit tests of the train step, through devd.spin (after one `devd run flow.py`).

    pytest test_train.py
"""

import devd


def test_train_learns_each_subcategory():
    result = devd.spin("flow.py", "train")
    assert result.ok, result.error and result.error.traceback
    assert result.artifacts["model"] == "logreg"
    assert result.artifacts["accuracy"] > 0.5
    assert set(result.artifacts["metrics"]) == set(result.artifacts["classes"])
    assert result.next_steps == ["join"]


def test_train_with_injected_artifacts():
    # As the post's `Runner("flow.py").spin("train", persist=True)`: the spun task is stored
    # in .metaflow_spin/ and read back with Metaflow's Client.
    result = devd.spin("flow.py", "train", artifacts_module="artifacts.py", persist=True)
    assert result.ok, result.error and result.error.traceback
    assert result.task["model"].data == "kmeans"
    assert len(result.artifacts["classifier"][2]) == 15  # one label per cluster
    assert result.artifacts["confusion"].sum() > 0
