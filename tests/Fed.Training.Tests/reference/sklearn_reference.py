#!/usr/bin/python3
"""Centralized scikit-learn references for the federated training tests (issue 13).

Run once: /usr/bin/python3 tests/Fed.Training.Tests/reference/sklearn_reference.py > tests/Fed.Training.Tests/reference/sklearn_reference.json
(needs python3-sklearn; the tests read the committed JSON, CI does not need sklearn).

Same rows and preprocessing as Fed: the ids every party holds; test rows crc32(id) % 10 < 3; each column standardized
with its training-row mean and population std (a constant column keeps std 1); missing values -> the mean (0).
Same objective as Fed's --l2 lambda (default 1): sum of row losses + lambda/2 ||w||^2, intercepts unpenalized, i.e.
LogisticRegression(C = 1/lambda) (multinomial for several classes) and Ridge(alpha = lambda).
"""
import csv, json, math, sys, zlib, os
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score, log_loss, r2_score, mean_squared_error, accuracy_score

DATA = os.environ.get("FED_SHARED_DATA", "/work/shared/data")
SETS = {
    "breast_cancer": ("logistic", ["guest.csv", "host.csv"]),
    "german_credit": ("logistic", ["guest.csv", "host1.csv", "host2.csv"]),
    "wine": ("softmax", ["guest.csv", "host.csv"]),
    "diabetes": ("linear", ["guest.csv", "host.csv"]),
}
LAMBDA = 1.0

def read(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        head = next(r)
        return head, {row[0]: row for row in r}

def num(v):
    return float("nan") if v.strip() in ("", "NA", "NaN", "nan") else float(v)

def standardize(cols, train):
    out = []
    for c in cols:
        t = c[train]; t = t[~np.isnan(t)]
        m = t.mean() if len(t) else 0.0
        s = math.sqrt(((t - m) ** 2).mean()) if len(t) else 0.0
        s = s if s > 1e-12 * max(1, abs(m)) else 1.0
        z = (c - m) / s
        z[np.isnan(z)] = 0.0
        out.append(z)
    return np.column_stack(out)

def ks(y, p):
    order = np.argsort(p)
    ys = y[order]
    pos = np.cumsum(ys) / ys.sum(); neg = np.cumsum(1 - ys) / (1 - ys).sum()
    return float(np.max(np.abs(pos - neg)))

result = {"lambda": LAMBDA, "sklearn": __import__("sklearn").__version__, "sets": {}}
for name, (kind, files) in SETS.items():
    tables = [read(os.path.join(DATA, name, f)) for f in files]
    ids = [i for i in tables[0][1] if all(i in t[1] for t in tables)]
    test = np.array([zlib.crc32(i.encode()) % 10 < 3 for i in ids])
    train = ~test
    ycol = tables[0][0].index("y")
    y = np.array([num(tables[0][1][i][ycol]) for i in ids])
    cols = []
    for head, rows in tables:
        for j, h in enumerate(head):
            if j == 0 or h == "y": continue
            cols.append(np.array([num(rows[i][j]) for i in ids]))
    X = standardize(cols, train)
    Xtr, Xte, ytr, yte = X[train], X[test], y[train], y[test]
    n = int(train.sum())
    entry = {"kind": kind, "intersection": len(ids), "train_rows": n, "test_rows": int(test.sum())}
    if kind in ("logistic", "softmax"):
        m = LogisticRegression(C=1.0 / LAMBDA, tol=1e-12, max_iter=100000).fit(Xtr, ytr)
        ptr = m.predict_proba(Xtr); pte = m.predict_proba(Xte)
        w2 = float((m.coef_ ** 2).sum())
        entry["train_log_loss"] = float(log_loss(ytr, ptr, labels=m.classes_))
        entry["train_objective"] = entry["train_log_loss"] + LAMBDA / (2 * n) * w2
        entry["test_log_loss"] = float(log_loss(yte, pte, labels=m.classes_))
        entry["test_accuracy"] = float(accuracy_score(yte, m.classes_[pte.argmax(1)]))
        if kind == "logistic":
            entry["test_auc"] = float(roc_auc_score(yte, pte[:, 1]))
            entry["test_ks"] = ks(yte, pte[:, 1])
            entry["max_abs_z_train"] = float(np.abs(m.decision_function(Xtr)).max())
    else:
        m = Ridge(alpha=LAMBDA, tol=1e-12).fit(Xtr, ytr)
        ptr = m.predict(Xtr); pte = m.predict(Xte)
        entry["train_objective"] = float(((ptr - ytr) ** 2).sum() / (2 * n) + LAMBDA / (2 * n) * (m.coef_ ** 2).sum())
        entry["test_r2"] = float(r2_score(yte, pte))
        entry["test_rmse"] = float(math.sqrt(mean_squared_error(yte, pte)))
    result["sets"][name] = entry
json.dump(result, sys.stdout, indent=2)
print()
