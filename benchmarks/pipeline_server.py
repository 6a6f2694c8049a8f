"""The baseline of benchmarks/serve_load.py: what a user would write without Fulcrum, a
transformers `pipeline()` in PyTorch behind FastAPI and uvicorn, serving the same model.

    MODEL_DIR=... TOKENIZER_DIR=... THREADS=2 uvicorn pipeline_server:app --port 8001
"""

import os

import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
classifier = pipeline(
    "text-classification",
    model=os.environ["MODEL_DIR"],
    tokenizer=os.environ["TOKENIZER_DIR"],
    device=-1,
    top_k=None,
)
app = FastAPI()


class PredictRequest(BaseModel):
    texts: list[str]


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    scores = classifier(request.texts, truncation=True, max_length=64)
    return {
        "predictions": [
            {
                "label": max(row, key=lambda item: item["score"])["label"],
                "probabilities": {item["label"]: item["score"] for item in row},
            }
            for row in scores
        ]
    }


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
