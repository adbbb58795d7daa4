"""The serving peer: FastAPI + LightGBM, the stack churn serve replaces.

Serves the same LightGBM model.txt with the same request shape as churn's
`POST /v1/predict` (feature-map instances): the probability and the top-k
factors from `pred_contrib`, as a team would write it (a numpy row with the
model's category codes, Booster.predict twice). Started by serve_vs_fastapi.py:

    CHURN_PEER_MODEL=model.txt uvicorn peer_fastapi:app --workers 2
"""

import json
import os

import lightgbm as lgb
import numpy as np
from fastapi import FastAPI, HTTPException, Request

MODEL = os.environ["CHURN_PEER_MODEL"]
booster = lgb.Booster(model_file=MODEL)
FEATURES = booster.feature_name()
with open(MODEL) as f:
    text = f.read()
categories = json.loads(text.rsplit("pandas_categorical:", 1)[1].strip()) if "pandas_categorical:" in text else []
# The categorical columns are the ones whose feature_infos list values (LightGBM's own record).
infos = text.split("feature_infos=", 1)[1].split("\n", 1)[0].split(" ")
CATEGORICAL = [name for name, info in zip(FEATURES, infos) if not info.startswith("[") and info != "none"]
CODES = {name: {c: float(k) for k, c in enumerate(cats)} for name, cats in zip(CATEGORICAL, categories)}
NAN = float("nan")

app = FastAPI()


def row(features: dict) -> list[float]:
    values = []
    for name in FEATURES:
        v = features.get(name)
        if name in CODES:
            values.append(CODES[name].get(v, NAN))
        else:
            values.append(NAN if v is None else float(v))
    return values


@app.post("/v1/predict")
async def predict(request: Request):
    body = await request.json()
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise HTTPException(status_code=422, detail="instances must be a non-empty array")
    top_k = int(body.get("top_k", 3))
    # A numpy matrix with category codes: LightGBM's fast path (no pandas per request).
    x = np.array([row(inst["features"]) for inst in instances], dtype=np.float64)
    # One thread per call: with 2 workers on 2 cores, OpenMP threads only fight.
    probability = booster.predict(x, num_threads=1)
    contrib = booster.predict(x, pred_contrib=True, num_threads=1)
    out = []
    for i, inst in enumerate(instances):
        r = contrib[i, :-1]
        order = np.argsort(-r)[:top_k]
        out.append({
            "learner_id": inst["learner_id"],
            "churn_probability": float(probability[i]),
            "margin": float(contrib[i].sum()),
            "base_value": float(contrib[i, -1]),
            "top_factors": [{"feature": FEATURES[j], "contribution": float(r[j])} for j in order if r[j] > 0],
        })
    return {"predictions": out}
