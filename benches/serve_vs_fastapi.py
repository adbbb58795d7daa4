"""churn serve vs FastAPI + LightGBM, side by side on the same machine.

Both serve the same 200-tree LightGBM model (trained here on `churn features`
of the committed sample, imported with `churn import-lightgbm`) and answer
the same single-row request: probability + top-3 factors (exact TreeSHAP;
`pred_contrib` for the peer).

- saturation: wrk, 2 threads, 32 connections, same duration for both;
- latency at fixed rates (1k and 5k req/s): oha -q (wrk cannot hold a rate),
  when oha is installed (`cargo install oha`).

    python benches/serve_vs_fastapi.py [--seconds 15] [--workers 2]

Prints each figure and the ratio ours / peer. Run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import lightgbm as lgb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CATEGORICAL = ["plan", "acquisition_channel", "device", "lifecycle_stage"]
OURS, PEER = 18090, 18091


def churn_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    binary = Path(target) / "release" / "churn"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "churn"], cwd=ROOT, check=True)
    return str(binary)


def build_model(work: Path) -> tuple[Path, dict]:
    table_path = work / "table.parquet"
    subprocess.run([churn_bin(), "--quiet", "features", "--data", "data", "--out", str(table_path),
                    "--now", "2030-01-01T00:00:00Z"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    table = pd.read_parquet(table_path)
    features = [c for c in table.columns if c not in ("learner_id", "as_of", "churned")]
    for c in CATEGORICAL:
        values = table[c].astype(object).where(table[c].notna(), None)
        table[c] = pd.Categorical(values, categories=sorted(values.dropna().unique()))
    labelled = table[table["churned"].notna()]
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 31, "learning_rate": 0.05, "min_data_in_leaf": 20,
         "verbose": -1, "seed": 1, "deterministic": True},
        lgb.Dataset(labelled[features], label=labelled["churned"].astype(float), categorical_feature=CATEGORICAL),
        num_boost_round=200,
    )
    model_txt = work / "model.txt"
    booster.save_model(str(model_txt))
    subprocess.run([churn_bin(), "--quiet", "import-lightgbm", str(model_txt), "--name", "bench",
                    "--out", str(work / "models")], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    row = table[table["as_of"] == table["as_of"].max()].iloc[0]
    feature_map = {}
    for f in features:
        v = row[f]
        feature_map[f] = None if pd.isna(v) else (str(v) if f in CATEGORICAL else float(v))
    body = {"instances": [{"learner_id": str(row["learner_id"]), "features": feature_map}], "top_k": 3}
    return model_txt, body


def wait_ready(port: int, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/docs" if port == PEER else f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


def post(port: int, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def wrk(port: int, body_file: Path, seconds: int) -> dict:
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.body = io.open("{body_file}"):read("*a")\n'
    )
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}/v1/predict"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    pct = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}
    return {"rps": rps, "p50_ms": pct["50"], "p99_ms": pct["99"], "non_2xx": int(errors.group(1)) if errors else 0}


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def oha(port: int, body_file: Path, rate: int, seconds: int) -> dict | None:
    if shutil.which("oha") is None:
        return None
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-q", str(rate), "-z", f"{seconds}s", "-c", "64",
                          "-m", "POST", "-H", "Content-Type: application/json", "-D", str(body_file),
                          f"http://127.0.0.1:{port}/v1/predict"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    summary, pct = data["summary"], data["latencyPercentiles"]
    return {"rate": rate, "achieved_rps": summary["requestsPerSec"], "success": summary["successRate"],
            "p50_ms": pct["p50"] * 1e3, "p99_ms": pct["p99"] * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of the peer")
    parser.add_argument("--with-reference", action="store_true",
                        help="give the imported model the committed churn-gbdt's reference.json, so the server "
                             "also keeps its live drift window (what a trained model costs on the predict path)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    model_txt, body = build_model(work)
    body_file = work / "body.json"
    body_file.write_text(json.dumps(body))
    if args.with_reference:
        reference = next((ROOT / "models" / "churn-gbdt").glob("*/reference.json"))
        version = next((work / "models" / "bench").iterdir())
        shutil.copy(reference, version / "reference.json")
    ours = subprocess.Popen([churn_bin(), "serve", "--models", str(work / "models"), "--champion", "bench",
                             "--addr", f"127.0.0.1:{OURS}", "--max-concurrency", "4096"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peer = subprocess.Popen([sys.executable, "-m", "uvicorn", "peer_fastapi:app", "--port", str(PEER),
                             "--workers", str(args.workers), "--log-level", "warning"],
                            cwd=ROOT / "benches", env={**os.environ, "CHURN_PEER_MODEL": str(model_txt), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(OURS)
        wait_ready(PEER)
        a, b = post(OURS, body)["predictions"][0], post(PEER, body)["predictions"][0]
        assert abs(a["churn_probability"] - b["churn_probability"]) < 1e-9, (a, b)
        assert [f["feature"] for f in a["top_factors"]] == [f["feature"] for f in b["top_factors"]], (a, b)
        print(f"same model, same answer: p = {a['churn_probability']:.6f}, top factors {[f['feature'] for f in a['top_factors']]}")
        trees = json.loads((work / "models" / "bench").joinpath(next((work / "models" / "bench").iterdir()).name, "model.json").read_text())["parameters"]["trees"]
        print(f"model: {trees} trees; request: 1 row, top-3 factors; peer: FastAPI + uvicorn ({args.workers} workers) + LightGBM pred_contrib")
        results = {}
        for name, port in [("churn serve", OURS), ("FastAPI+LightGBM", PEER)]:
            wrk(port, body_file, 3)  # warm up
            results[name] = {"wrk": wrk(port, body_file, args.seconds),
                             "oha": [oha(port, body_file, rate, args.seconds) for rate in (1000, 5000)]}
        print(f"\nsaturation (wrk -t2 -c32 -d{args.seconds}s, same 2 cores as the servers):")
        for name, r in results.items():
            w = r["wrk"]
            print(f"  {name:<18} {w['rps']:>9.0f} req/s  p50 {w['p50_ms']:7.2f} ms  p99 {w['p99_ms']:7.2f} ms  non-2xx {w['non_2xx']}")
        ratio = results["churn serve"]["wrk"]["rps"] / results["FastAPI+LightGBM"]["wrk"]["rps"]
        print(f"  throughput ratio ours / peer: {ratio:.1f}x")
        if shutil.which("oha"):
            print(f"\nfixed rate (oha -q, {args.seconds}s):")
            for name, r in results.items():
                for o in r["oha"]:
                    print(f"  {name:<18} {o['rate']:>5} req/s asked, {o['achieved_rps']:7.0f} achieved, success {100 * o['success']:5.1f}%  "
                          f"p50 {o['p50_ms']:7.2f} ms  p99 {o['p99_ms']:7.2f} ms")
        else:
            print("\noha is not installed: fixed-rate latencies skipped (cargo install oha)")
        print(json.dumps(results))
    finally:
        for process in (ours, peer):
            process.send_signal(signal.SIGINT)
        for process in (ours, peer):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
