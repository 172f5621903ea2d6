#!/usr/bin/python3
"""Centralized scikit-learn references for the horizontal-training accuracy tests.

Run once (Debian: apt-get install python3-sklearn) from the repository root:
    /usr/bin/python3 tests/Fed.Training.Tests/Horizontal/reference/sklearn_reference.py [DATA_DIR]
It writes reference.json beside this script; the tests read that file, so CI never needs scikit-learn.

Each set's centralized.csv is the union of what the horizontal clients hold. Test rows are the ids with
crc32(utf-8 id) % 10 < 3 (Fed's SplitRule), the rest train. Features are standardized with the training rows'
mean and population std (StandardScaler), then:
  binary   LogisticRegression(C=1)              -> held-out AUC
  softmax  LogisticRegression(C=1), multinomial -> held-out accuracy
  linear   Ridge(alpha=1)                       -> held-out R^2
All three minimize  mean loss + l2/2 * ||w||^2  with l2 = 1/n_train (intercepts not penalized), which is the
objective Fed's FedAvg clients optimize when given --l2 1/n_train (recorded as "l2" below).
"""
import csv, json, os, sys, zlib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

SETS = {"breast_cancer": "logistic", "german_credit": "logistic", "wine": "softmax", "diabetes": "linear"}


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    ids = [r[0] for r in body]
    y = np.array([float(r[1]) for r in body])
    x = np.array([[float(v) for v in r[2:]] for r in body])
    return header[2:], ids, x, y


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("FED_SHARED_DATA", "/work/shared/data")
    out = {"sklearn_version": sklearn.__version__, "split": "test = crc32(id) % 10 < 3", "sets": {}}
    for name, kind in SETS.items():
        features, ids, x, y = load(os.path.join(data, name, "centralized.csv"))
        test = np.array([zlib.crc32(i.encode("utf-8")) % 10 < 3 for i in ids])
        scaler = StandardScaler().fit(x[~test])
        xtr, xte = scaler.transform(x[~test]), scaler.transform(x[test])
        ytr, yte = y[~test], y[test]
        n = int((~test).sum())
        if kind == "linear":
            m = Ridge(alpha=1.0).fit(xtr, ytr)
            metric, value = "r2", r2_score(yte, m.predict(xte))
        else:
            m = LogisticRegression(C=1.0, max_iter=100000, tol=1e-12).fit(xtr, ytr)
            if kind == "logistic":
                metric, value = "auc", roc_auc_score(yte, m.decision_function(xte))
            else:
                metric, value = "accuracy", accuracy_score(yte, m.predict(xte))
        out["sets"][name] = {
            "kind": kind, "metric": metric, "value": round(float(value), 6),
            "train_rows": n, "test_rows": int(test.sum()), "features": len(features), "l2": 1.0 / n,
        }
        print(f"{name}: {kind} {metric} = {value:.4f} (train {n}, test {int(test.sum())})")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
