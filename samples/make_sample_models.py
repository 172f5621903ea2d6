"""Builds the sample breast_cancer partial models (guest + host) shipped in samples/.

A plain centralized L2 logistic regression on standardized features (numpy only), split by party:
each party's file holds its own weights and its own standardization statistics (transform "standardize"),
the guest also the intercept. Written without a checksum; `fed model stamp` validates and stamps them.
Real federated models come from `fed train local`; this keeps the demo independent of training.
"""
import csv, json, sys
import numpy as np

data = sys.argv[1]  # ../shared/data/breast_cancer
def load(path):
    with open(path) as f:
        r = csv.reader(f); head = next(r); rows = list(r)
    return head, {row[0]: row[1:] for row in rows}

gh, g = load(f"{data}/guest.csv")
hh, h = load(f"{data}/host.csv")
ids = sorted(set(g) & set(h))
y = np.array([float(g[i][0]) for i in ids])
Xg = np.array([[float(v) for v in g[i][1:]] for i in ids]); gf = gh[2:]
Xh = np.array([[float(v) for v in h[i]] for i in ids]); hf = hh[1:]
X = np.hstack([Xg, Xh]); mean = X.mean(0); std = X.std(0)
Z = (X - mean) / std
w = np.zeros(Z.shape[1]); b = 0.0
for _ in range(3000):
    p = 1 / (1 + np.exp(-(Z @ w + b)))
    w -= 0.1 * (Z.T @ (p - y) / len(y) + w / len(y)); b -= 0.1 * (p - y).mean()
k = len(gf)
def part(party, role, feats, ws, mu, sd, intercepts):
    return {"schema_version": 1, "model_id": "breast_cancer_lr", "version": 1, "kind": "logistic", "classes": [],
            "party": {"id": party, "role": role}, "parties": ["guest", "host"], "features": feats,
            "weights": [[float(x) for x in ws]], "intercepts": intercepts,
            "transform": {"kind": "standardize", "mean": [float(x) for x in mu], "std": [float(x) for x in sd]},
            "missing": {"policy": "reject"},
            "training": {"algorithm": "centralized L2 logistic regression (sample)", "iterations": "3000", "rows": str(len(ids))},
            "checksum": ""}
json.dump(part("guest", "guest", gf, w[:k], mean[:k], std[:k], [float(b)]), open("breast_cancer/guest.unstamped.json", "w"), indent=1)
json.dump(part("host", "host", hf, w[k:], mean[k:], std[k:], []), open("breast_cancer/host.unstamped.json", "w"), indent=1)
acc = ((1 / (1 + np.exp(-(Z @ w + b))) > 0.5) == y).mean()
print(f"train accuracy {acc:.3f} on {len(ids)} rows")
