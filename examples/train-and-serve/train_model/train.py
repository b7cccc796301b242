"""Train a model on the prepared data, check it on the test set, and save it for the scoring service."""

import os
import pickle
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

ARTIFACTS = Path(os.environ.get("BODYWORK_ARTIFACTS_DIR", "artifacts"))
MIN_ACCURACY = 0.9  # a model worse than this is not deployed: the stage fails instead
SPECIES = ["setosa", "versicolor", "virginica"]


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(ARTIFACTS / f"{name}.csv", delimiter=",", skiprows=1)
    return table[:, :4], table[:, 4].astype(int)


def main() -> None:
    features, labels = load("train")
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    test_features, test_labels = load("test")
    accuracy = accuracy_score(test_labels, model.predict(test_features))
    print(f"test accuracy {accuracy:.3f} on {len(test_labels)} rows")
    if accuracy < MIN_ACCURACY:
        sys.exit(f"accuracy {accuracy:.3f} is below {MIN_ACCURACY}; not saving the model")
    commit = os.environ.get("GIT_COMMIT_HASH", "unknown")
    with open(ARTIFACTS / "model.pickle", "wb") as handle:
        pickle.dump({"model": model, "species": SPECIES, "commit": commit, "accuracy": accuracy}, handle)
    print(f"saved the model trained at commit {commit[:12]}")


if __name__ == "__main__":
    main()
