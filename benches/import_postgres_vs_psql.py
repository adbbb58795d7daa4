"""Side by side: `churn import` of a PostgreSQL query against `psql \\copy` of the same query to a CSV file.

    .venv/bin/python benches/import_postgres_vs_psql.py [--rows 5000000] [--repeat 2]

Starts a PostgreSQL server of its own (initdb + pg_ctl from Debian's
postgresql package, as the postgres user when run as root, a temporary
directory, a free port), fills a table of --rows daily-count events, then
times, each as its own process: `psql -c "\\copy (query) TO file CSV HEADER"`
(the export a hand conversion starts from, before any conversion) and
`churn import --no-validate` streaming the same query (COPY TO STDOUT) into
contract Parquet. Prints both wall times, peak RSS and the ratio.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = "SELECT user_id, (extract(epoch FROM day) * 1000)::bigint AS day_ms, kind, n FROM events"


def as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


def run(cmd, repeat, env=None):
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        output = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            sys.exit(f"{cmd[0]} failed:\n{output}")
        runs.append((time.perf_counter() - start, usage.ru_maxrss / 2**20))
    return min(r[0] for r in runs), max(r[1] for r in runs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        sys.exit("no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql package")
    bin_dir = Path(bins[-1]).parent
    subprocess.run(["cargo", "test", "--release", "--workspace", "--no-run", "--quiet"], cwd=ROOT, check=True)
    churn = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")) + "/release/churn"

    work = Path(tempfile.mkdtemp(prefix="churn-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = work / "data"
    subprocess.run(as_postgres([str(bin_dir / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data)]),
                   check=True, stdout=subprocess.DEVNULL)
    options = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(work / "log"),
                                "-w", "start"]), check=True, stdout=subprocess.DEVNULL)
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        psql = ["psql", "-q", "-X", url]
        subprocess.run(psql + ["-c", f"""
            CREATE TABLE events AS SELECT 'u' || (g % 200000) AS user_id,
              timestamptz '2026-01-01 00:00:00+00' + (g % 180) * interval '1 day' AS day,
              (ARRAY['login','video_watch','quiz_attempt','forum_post','page_view','badge_earned'])[g % 6 + 1] AS kind,
              g % 5 + 1 AS n
            FROM generate_series(1, {args.rows}) g"""], check=True)
        out = Path(tempfile.mkdtemp(prefix="churn-bench-pg-out-"))
        mapping = out / "mapping.toml"
        mapping.write_text(f"""
[sources.events]
query = "{QUERY}"
url = "{url}"
[learners]
from_events = true
plan = {{ value = "unknown" }}
acquisition_channel = {{ value = "unknown" }}
[[events]]
source = "events"
learner_id = {{ column = "user_id" }}
ts = {{ column = "day_ms", format = "epoch_ms" }}
event_type = {{ column = "kind" }}
count = {{ column = "n" }}
""")
        peer = run(psql + ["-c", f"\\copy ({QUERY}) TO '{out / 'export.csv'}' CSV HEADER"], args.repeat)
        ours = run([churn, "--quiet", "import", "--mapping", str(mapping), "--out", str(out / "imported"),
                    "--no-validate"], args.repeat)
        print(f"{args.rows:,} rows from PostgreSQL")
        print(f"{'':34}{'wall s':>10}{'peak RSS GiB':>14}")
        print(f"{'churn import (to contract Parquet)':34}{ours[0]:>10.2f}{ours[1]:>14.2f}")
        peer_name = "psql \\copy (to CSV only)"
        print(f"{peer_name:34}{peer[0]:>10.2f}{peer[1]:>14.2f}")
        print(f"churn / psql time {ours[0] / peer[0]:.2f}x")
    finally:
        subprocess.run(as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
