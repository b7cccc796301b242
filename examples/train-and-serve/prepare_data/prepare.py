"""Prepare the data: split the iris measurements that ship with scikit-learn into train and test sets."""

import argparse
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

ARTIFACTS = Path(os.environ.get("BODYWORK_ARTIFACTS_DIR", "artifacts"))
COLUMNS = "sepal_length,sepal_width,petal_length,petal_width,species"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test-fraction", type=float, default=0.2)
    args = parser.parse_args()

    iris = load_iris()
    rows = np.column_stack([iris.data, iris.target])
    train, test = train_test_split(
        rows, test_size=args.test_fraction, random_state=42, stratify=iris.target
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name, table in (("train", train), ("test", test)):
        np.savetxt(ARTIFACTS / f"{name}.csv", table, delimiter=",", header=COLUMNS, comments="", fmt="%g")
    print(f"prepared {len(train)} training rows and {len(test)} test rows in {ARTIFACTS}")


if __name__ == "__main__":
    main()
