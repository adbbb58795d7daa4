"""Learner-keyed serving from the store vs the same learners sent as raw events.

One run, one machine, side by side:

1. `churn simulate` (100k learners x 180 days, ~11M events by default) and
   `churn store load` into the embedded store: bulk load rate.
2. `churn serve --store`: ingest over HTTP, batches of 1,000 events with
   event ids (new learners, so every row is stored), from 2 client threads:
   events/s acknowledged (each batch one durable commit).
3. Saturation (oha, 32 connections): the most active learner asked by id
   (GET /v1/learners/{id}/prediction, top-3 factors) vs the same learner's
   raw events posted to /v1/predict; and random learners asked by id.
4. Fixed rate (oha -q) while a client ingests a steady 10k events/s in
   parallel: p50 / p99 of learner-keyed and raw requests.

    python benches/store_vs_raw.py [--learners 100000] [--seconds 10] [--ingest-seconds 20] [--work DIR]

5. The same on PostgreSQL (a server of its own, initdb + pg_ctl, durable
   commits), with `psql \\copy` of 1M events into a plain table as a reference.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-ingest-token-0123456789"
PORT = 18097
AS_OF = "2026-06-15T00:00:00Z"


def churn_bin() -> str:
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    binary = Path(target) / "release" / "churn"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "churn"], cwd=ROOT, check=True)
    return str(binary)


def oha(args: list[str], seconds: int) -> dict:
    out = subprocess.run(["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s", *args],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    summary, pct = data["summary"], data["latencyPercentiles"]
    codes = data.get("statusCodeDistribution", {})
    return {"rps": summary["requestsPerSec"], "ok_rps": codes.get("200", 0) / seconds, "success": summary["successRate"],
            "p50_ms": pct["p50"] * 1e3, "p99_ms": pct["p99"] * 1e3, "status": codes}


class Ingest(threading.Thread):
    """Posts batches of 1,000 events with unique event ids until stopped;
    `rate` batches/s when given, else as fast as acknowledged. Grouped: each
    batch one new learner's 1,000 events. Interleaved (`learners` given):
    each batch one event of each of 1,000 stored learners, as a pipeline of
    many learners' events sends them. `prepare(n)` builds the first n
    bodies before the clock starts, so the client's own JSON encoding (on
    the server's cores) is not what is measured; later batches are built as
    they are sent."""

    def __init__(self, name: str, rate: float | None, learners: list[str] | None = None) -> None:
        super().__init__(daemon=True)
        self.name_prefix, self.rate, self.learners = name, rate, learners
        self.stop = threading.Event()
        self.events = 0
        self.failed = 0
        self.bodies: list[tuple[str | None, str]] = []

    def body(self, k: int) -> tuple[str | None, str]:
        """Batch k: (the new learner to create first, or None; the JSON lines)."""
        if self.learners:
            picked = [self.learners[(k * 1000 + j) % len(self.learners)] for j in range(1000)]
            rows = ({"learner_id": learner, "event_id": f"{self.name_prefix}-{k}-{j}",
                     "ts": f"2026-06-{1 + k // 1440 % 28:02d}T{k // 60 % 24:02d}:{k % 60:02d}:00Z",
                     "event_type": "video_watched", "duration_s": 60 + j % 600}
                    for j, learner in enumerate(picked))
            return None, "\n".join(json.dumps(row) for row in rows)
        learner = f"{self.name_prefix}-{k}"
        rows = ({"learner_id": learner, "event_id": f"{learner}-{j}",
                 "ts": f"2026-03-{1 + j // 1440 % 28:02d}T{j // 60 % 24:02d}:{j % 60:02d}:00Z",
                 "event_type": "video_watched", "duration_s": 60 + j % 600, "course_id": None}
                for j in range(1000))
        return learner, "\n".join(json.dumps(row) for row in rows)

    def prepare(self, batches: int) -> "Ingest":
        self.bodies = [self.body(k) for k in range(batches)]
        return self

    def run(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        profile = json.dumps({"signup_at": "2026-01-01T00:00:00Z", "plan": "monthly",
                              "acquisition_channel": "organic", "device": "web"})
        started = time.perf_counter()
        k = 0
        while not self.stop.is_set():
            learner, lines = self.bodies[k] if k < len(self.bodies) else self.body(k)
            if learner is not None:
                self.conn.request("PUT", f"/v1/learners/{learner}", profile,
                                  {**self.headers, "Content-Type": "application/json"})
                self.conn.getresponse().read()
            self.post(lines)
            k += 1
            if self.rate:
                wait = started + k / self.rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)

    def post(self, lines: str) -> None:
        self.conn.request("POST", "/v1/events", lines, {**self.headers, "Content-Type": "application/x-ndjson"})
        response = self.conn.getresponse()
        body = json.loads(response.read())
        if response.status == 200:
            self.events += body["accepted"]
        else:
            self.failed += 1


MERGE_AT = 400_000  # churn_store::sqlite::MERGE_AT


def backlog() -> int:
    """Events the server's store has acknowledged but not merged yet
    (`churn_store_backlog_events`; 0 without an inbox)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith("churn_store_backlog_events "):
            return int(float(line.split()[1]))
    return 0


def settle(limit_s: float = 600.0) -> float:
    """Waits until the backlog is under the merge threshold (what is left is
    a bounded buffer, not a debt); returns when that happened."""
    deadline = time.perf_counter() + limit_s
    while backlog() >= MERGE_AT and time.perf_counter() < deadline:
        time.sleep(0.2)
    return time.perf_counter()


def raw_events(sim: Path, learner: str) -> list[dict]:
    """The learner's events up to AS_OF as a raw instance carries them."""
    e = pd.read_parquet(sim / "events.parquet")
    e = e[e["learner_id"] == learner]
    e = e[e["ts"] <= pd.Timestamp(AS_OF)].sort_values("ts", kind="stable")
    rows = []
    for r in e.to_dict("records"):
        row = {"ts": r["ts"].strftime("%Y-%m-%dT%H:%M:%S.") + f"{r['ts'].microsecond // 1000:03d}Z",
               "event_type": r["event_type"]}
        for c in ("course_id", "duration_s", "score", "amount", "latency_ms", "stalls"):
            v = r.get(c)
            row[c] = None if v is None or (isinstance(v, float) and v != v) else v
        if r.get("count", 1) not in (1, None):
            row["count"] = int(r["count"])
        rows.append(row)
    return rows


def postgres_server(work: Path):
    """A PostgreSQL server of its own (initdb + pg_ctl, Debian's package; as the
    postgres user when run as root): (url, stop), or None with the reason."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        return None, "no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)"
    bin_dir = bins[-1].parent
    as_postgres = (lambda cmd: ["runuser", "-u", "postgres", "--", *cmd]) if os.geteuid() == 0 else (lambda cmd: cmd)
    pg = work / "pg"
    shutil.rmtree(pg, ignore_errors=True)
    pg.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(pg, "postgres", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    subprocess.run(as_postgres([str(bin_dir / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(pg / "data")]),
                   check=True, stdout=subprocess.DEVNULL)
    # Durable commits, as the store promises: fsync and synchronous_commit on (the defaults).
    options = f"-p {port} -k {pg} -c listen_addresses=127.0.0.1"
    subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(pg / "data"), "-o", options, "-l", str(pg / "log"),
                                "-w", "start"]), check=True, stdout=subprocess.DEVNULL)

    def stop() -> None:
        subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(pg / "data"), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return (f"postgresql://postgres@127.0.0.1:{port}/postgres", stop), None


def load(churn: str, sim: Path, store: str, work: Path, learners: int, label: str) -> None:
    t = time.perf_counter()
    said = subprocess.run([churn, "--quiet", "store", "load", "--data", str(sim), "--store", store,
                           "--work", str(work / "load"), "--now", "2030-01-01T00:00:00Z"],
                          check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - t
    stored = int(said.split("events: ")[1].split(" =")[0])
    print(f"{label}: store load of {stored:,} events of {learners:,} learners in {seconds:.1f} s "
          f"= {stored / seconds:,.0f} events/s (batches of 50,000; the whole command, validation included)")


def measure_server(sim: Path, work: Path, counts, busiest: str, seconds: int, ingest_seconds: int) -> None:
    """Ingest, saturation and fixed-rate figures of the server on PORT."""
    base = f"http://127.0.0.1:{PORT}"
    # The raw body of the same learner, from the store itself.
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    conn.request("GET", f"/v1/learners/{busiest}")
    summary = json.loads(conn.getresponse().read())
    raw = json.dumps({"instances": [{"learner_id": busiest, "as_of": AS_OF, "profile": summary["profile"],
                                     "events": raw_events(sim, busiest)}], "top_k": 3})
    body = work / "raw.json"
    body.write_text(raw)
    # Reading the events took longer than the server keeps an idle
    # connection open: a new one.
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    conn.request("POST", "/v1/predict", raw, {"Content-Type": "application/json"})
    by_raw = json.loads(conn.getresponse().read())["predictions"][0]
    conn.request("GET", f"/v1/learners/{busiest}/prediction?as_of={AS_OF}")
    by_id = json.loads(conn.getresponse().read())["predictions"][0]
    print(f"same answer: raw {by_raw['churn_probability']:.9f} vs by id {by_id['churn_probability']:.9f}; "
          f"raw body {len(raw) / 1024:.0f} KiB")

    # Ingest over HTTP, as fast as acknowledged: each batch one new learner's
    # events, then each batch 1,000 stored learners' events.
    stored = counts.index.to_series().sample(n=min(200_000, len(counts)), random_state=2).tolist()
    # Bodies for up to 100 batches/s per client, built before the clock starts.
    ready = 100 * ingest_seconds
    for what, writers in (("one new learner's events", [Ingest(f"bench-{i}", None).prepare(ready) for i in range(2)]),
                          ("1,000 stored learners' events",
                           [Ingest(f"mixed-{i}", None, stored[i::2]).prepare(ready) for i in range(2)])):
        waiting_before = backlog()
        started = time.perf_counter()
        for w in writers:
            w.start()
        time.sleep(ingest_seconds)
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join()
        acknowledged = time.perf_counter()
        events = sum(w.events for w in writers)
        # Sustained: the events merged into the clustered table by the time
        # the backlog is back under the merge threshold (what is left waits
        # for the next merge and is not counted), over that time.
        settled = settle()
        left = max(0, backlog() - waiting_before)
        print(f"HTTP ingest, batches of 1,000 with event ids, 2 clients, each batch {what}: "
              f"{events / (acknowledged - started):,.0f} events/s acknowledged, "
              f"{(events - left) / (settled - started):,.0f} sustained (merged into the clustered table; "
              f"{left:,} of them still waiting) ({sum(w.failed for w in writers)} failed batches)")

    keyed_url = f"{base}/v1/learners/{busiest}/prediction?as_of={AS_OF}&top_k=3"
    raw_args = ["-m", "POST", "-H", "Content-Type: application/json", "-D", str(body), f"{base}/v1/predict"]
    learners = pd.read_parquet(sim / "learners.parquet", columns=["learner_id", "signup_at"])
    signed_up = learners[learners["signup_at"] <= pd.Timestamp(AS_OF)]["learner_id"]
    ids = signed_up.sample(n=min(2000, len(signed_up)), random_state=1).tolist()
    regex = "(" + "|".join(ids) + ")"
    random_args = ["--rand-regex-url", f"{base}/v1/learners/{regex}/prediction\\?as_of=2026-06-15T00:00:00Z&top_k=3"]
    print(f"\nsaturation (oha, 32 connections, {seconds} s; answered = 200s per second, the rest refused fast with 503):")
    keyed = oha(["-c", "32", keyed_url], seconds)
    rawsat = oha(["-c", "32", *raw_args], seconds)
    rand = oha(["-c", "32", *random_args], seconds)
    # As many connections as scoring slots: nothing is refused, so this is
    # the cost per request without the refusals' share of the cores.
    slots = str(os.cpu_count() + 1)
    keyed_slots = oha(["-c", slots, keyed_url], seconds)
    raw_slots = oha(["-c", slots, *raw_args], seconds)
    for label, r in ((f"by id, {busiest}", keyed), ("raw events, same", rawsat), ("by id, random 2,000", rand),
                     (f"by id, {busiest}, {slots} conns", keyed_slots), (f"raw, same, {slots} conns", raw_slots)):
        print(f"  {label:30s} {r['ok_rps']:8,.0f} answered/s  ({r['rps']:,.0f} req/s in all)  {r['status']}")
    print(f"  ratio by id / raw (same learner): {keyed['ok_rps'] / rawsat['ok_rps']:.2f}x at 32 connections, "
          f"{keyed_slots['ok_rps'] / raw_slots['ok_rps']:.2f}x at {slots}")

    rate = int(rawsat["ok_rps"] * 0.5)
    print(f"\nfixed rate {rate} req/s (oha -q, {seconds} s) while ingesting 10,000 events/s:")
    for label, extra in (("by id, same learner", [keyed_url]), ("raw events, same", raw_args),
                         ("by id, random", random_args)):
        steady = Ingest(f"steady-{label.replace(' ', '-').replace(',', '')}", rate=10.0).prepare(10 * seconds + 10)
        steady.start()
        r = oha(["-c", "64", "-q", str(rate), *extra], seconds)
        steady.stop.set()
        steady.join()
        print(f"  {label:22s} p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  "
              f"achieved {r['rps']:,.0f} req/s  {r['status']}; ingest alongside {steady.events / seconds:,.0f} events/s")


def serve_and_measure(churn: str, store: str, courses: Path, work: Path, sim: Path, counts, seconds: int,
                      ingest_seconds: int, label: str) -> None:
    settings = work / "serve.toml"
    settings.write_text(f'ingest_token = "{TOKEN}"\n')
    busiest = counts.index[0]
    server = subprocess.Popen([churn, "serve", "--store", store, "--courses", str(courses),
                               "--config", str(settings), "--addr", f"127.0.0.1:{PORT}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        while server.stdout is not None:
            line = server.stdout.readline()
            if not line:
                raise SystemExit("churn serve exited")
            if line.startswith("listening on"):
                break
        print(f"\n== {label}")
        measure_server(sim, work, counts, busiest, seconds, ingest_seconds)
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--learners", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--ingest-seconds", type=int, default=20,
                        help="each HTTP ingest phase (long enough that the merge's last batch is a small part)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/churn-store-bench"))
    parser.add_argument("--no-postgres", action="store_true", help="the embedded store only")
    args = parser.parse_args()
    if shutil.which("oha") is None:
        print("oha is not installed (cargo install oha): nothing to measure")
        return 1
    churn = churn_bin()
    work = args.work
    sim = work / f"sim-{args.learners}"
    if not (sim / "events.parquet").exists():
        t = time.perf_counter()
        subprocess.run([churn, "--quiet", "simulate", "--learners", str(args.learners), "--days", str(args.days),
                        "--seed", "7", "--out", str(sim)], check=True)
        print(f"simulate: {time.perf_counter() - t:.1f} s")
    courses = work / "courses.csv"
    pd.read_parquet(sim / "courses.parquet").to_csv(courses, index=False)
    store = work / "store.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    load(churn, sim, str(store), work, args.learners, "embedded (SQLite)")
    files = sorted(store.parent.glob(store.name + "*"))
    print(f"  store files {sum(f.stat().st_size for f in files) / 2**20:,.0f} MiB ({', '.join(f.name for f in files)})")
    events = pd.read_parquet(sim / "events.parquet", columns=["learner_id"])
    counts = events["learner_id"].value_counts()
    print(f"most active learner: {counts.index[0]} ({counts.iloc[0]} events)")
    serve_and_measure(churn, str(store), courses, work, sim, counts, args.seconds, args.ingest_seconds,
                      "embedded store (SQLite)")

    if args.no_postgres:
        return 0
    started, why = postgres_server(work)
    if started is None:
        print(f"\nPostgreSQL: skipped: {why}")
        return 0
    url, stop = started
    try:
        load(churn, sim, url, work, args.learners, "PostgreSQL")
        reference = work / "copy.csv"
        sample = pd.read_parquet(sim / "events.parquet").head(1_000_000)
        sample.to_csv(reference, index=False)
        t = time.perf_counter()
        subprocess.run(["psql", "-q", "-X", url, "-c",
                        "CREATE TABLE copy_reference (learner_id text, ts timestamptz, event_type text, course_id text, "
                        "duration_s float8, score float8, amount float8, latency_ms float8, stalls float8)",
                        "-c", f"\\copy copy_reference FROM '{reference}' CSV HEADER"], check=True)
        copy_seconds = time.perf_counter() - t
        print(f"  reference: psql \\copy of the first 1,000,000 events into a plain table (no index, no checks): "
              f"{1_000_000 / copy_seconds:,.0f} events/s")
        serve_and_measure(churn, url, courses, work, sim, counts, args.seconds, args.ingest_seconds,
                          "PostgreSQL store")
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
