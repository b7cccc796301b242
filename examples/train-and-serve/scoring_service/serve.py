"""A scoring service: POST iris measurements to /iris/v1/score and get the predicted species back."""

import os
import pickle
from pathlib import Path

from flask import Flask, jsonify, request

ARTIFACTS = Path(os.environ.get("BODYWORK_ARTIFACTS_DIR", "artifacts"))
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

with open(ARTIFACTS / "model.pickle", "rb") as handle:
    saved = pickle.load(handle)

app = Flask(__name__)


@app.post("/iris/v1/score")
def score():
    data = request.get_json(silent=True) or {}
    missing = [name for name in FEATURES if not isinstance(data.get(name), (int, float))]
    if missing:
        return jsonify(error=f"send numbers for {', '.join(missing)}"), 400
    row = [[data[name] for name in FEATURES]]
    probabilities = saved["model"].predict_proba(row)[0]
    best = int(probabilities.argmax())
    return jsonify(
        species_prediction=saved["species"][best],
        probabilities={s: round(float(p), 4) for s, p in zip(saved["species"], probabilities, strict=True)},
        model_commit=saved["commit"],
    )


@app.get("/healthz")
def healthz():
    return "ok"


if __name__ == "__main__":
    print(f"serving the model trained at commit {saved['commit'][:12]} on port 5000", flush=True)
    app.run(host="0.0.0.0", port=5000)
