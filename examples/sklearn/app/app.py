"""A scikit-learn handler on Lambda: numpy, scipy and scikit-learn come from a lambdaslim layer.

The layer (built by ``lambdaslim pack`` inside ``sam build``, see layer/Makefile) holds the
packages compressed; the first import of each extracts it into /tmp, once per sandbox. ``@lambdaslim.handler`` logs one JSON
line per invocation (cold start, init and extraction time, /tmp use) and removes the
invocation's scratch folder afterwards.
"""

from __future__ import annotations

import os
from typing import Any

import lambdaslim.bootstrap  # noqa: F401  first: makes the packed layers in /opt importable
import lambdaslim
import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


@lambdaslim.handler(timeout_margin=5.0)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    X, y = make_classification(
        n_samples=int(event.get("samples", 2000)), n_features=20, n_informative=8,
        random_state=int(event.get("seed", 0)),
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    model = RandomForestClassifier(n_estimators=40, random_state=0).fit(X_train, y_train)
    path = os.path.join(lambdaslim.scratch(), "model.joblib")  # gone after the invocation
    joblib.dump(model, path)
    return {
        "accuracy": round(float(model.score(X_test, y_test)), 4),
        "predictions": model.predict(X_test[:8]).tolist(),
        "model_bytes": os.path.getsize(path),
        "seconds_left": round(lambdaslim.remaining(), 1),
    }
