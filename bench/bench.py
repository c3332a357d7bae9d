#!/usr/bin/env python3
"""Throughput and peak memory of keylink against the Python baseline, in one run.

usage: bench/bench.py [ROWS ...] [--skip-baseline] [--keylink PATH]
Generates the clickstream with ../shared/bench/gen_clickstream.py (cached in
bench/data/), runs ../shared/bench/baseline_py.py and `keylink run` with the
component and native engines at 1 worker and at all cores, each with a fresh
key store (every key is created), and prints a Markdown table: rows/s, MB/s,
peak RSS and the ratio to the baseline of the same run. Needs `cryptography`
for the baseline (pip install cryptography) and a release build of keylink
(cargo build --release -p keylink-host).
"""
import json, os, shutil, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench")

JOB = {
    "data_contract": {"ref": "acme/clickstream/1.0.0", "key_field": "session_id",
                      "pii_fields": {"email": 1, "ip_address": 1, "customer_id": 2}},
    "source_data": {"file_name": None},
    "consent": {"default_consent_levels": [],
                "consent_level_extractor": {"field": "consent",
                    "field_patterns": {"analytics": {"consent_levels": [1]}, "marketing": {"consent_levels": [1, 2]},
                                       "[1]": {"consent_levels": [1]}, "[1,2]": {"consent_levels": [1, 2]},
                                       "[1,2,3]": {"consent_levels": [1, 2, 3]}, "2": {"consent_levels": [2]}}}},
    "encryption": {"batch_job_group_id": "bench",
                   "timestamp_config": {"field": "timestamp", "format": "iso8601"}},
    "encrypted_data": {"target": {"file_name": None}},
    "encryption_keys_data": {"target": {"file_name": None}},
    "derived_data": [{"target": {"file_name": None}, "consent_levels": [1], "consent_level_type": "GRANULAR"}],
}

def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak RSS in MB)."""
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True, env=env)
    secs = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    rss_kb = int(r.stderr.strip().splitlines()[-1])
    return secs, rss_kb / 1024

def main():
    args = sys.argv[1:]
    skip_baseline = "--skip-baseline" in args
    keylink = os.path.join(ROOT, "target", "release", "keylink")
    if "--keylink" in args:
        keylink = args[args.index("--keylink") + 1]
    rows_list = [int(a) for a in args if a.isdigit()] or [1_000_000]
    os.makedirs(os.path.join(HERE, "data"), exist_ok=True)
    ncores = os.cpu_count() or 1
    print(f"| rows | run | time (s) | rows/s | MB/s | peak RSS (MB) | vs baseline |")
    print(f"|---:|---|---:|---:|---:|---:|---:|")
    for rows in rows_list:
        src = os.path.join(HERE, "data", f"clickstream-{rows}.csv")
        if not os.path.exists(src):
            subprocess.run([sys.executable, os.path.join(SHARED, "gen_clickstream.py"), str(rows), src], check=True)
        size_mb = os.path.getsize(src) / 1e6
        work = tempfile.mkdtemp(prefix="keylink-bench-")
        results = []
        if not skip_baseline:
            secs, rss = timed([sys.executable, os.path.join(SHARED, "baseline_py.py"), src, os.path.join(work, "baseline")])
            results.append(("python baseline", secs, rss))
        for engine in ["component", "native"]:
            for workers in sorted({1, ncores}):
                job = json.loads(json.dumps(JOB))
                out = os.path.join(work, f"{engine}-{workers}")
                os.makedirs(out)
                job["source_data"]["file_name"] = src
                job["encrypted_data"]["target"]["file_name"] = os.path.join(out, "encrypted.csv")
                job["encryption_keys_data"]["target"]["file_name"] = os.path.join(out, "keys.csv")
                job["derived_data"][0]["target"]["file_name"] = os.path.join(out, "derived.csv")
                jp = os.path.join(out, "job.json")
                with open(jp, "w") as f:
                    json.dump(job, f)
                secs, rss = timed([keylink, "run", jp, "--engine", engine, "--workers", str(workers),
                                   "--key-store", "sqlite:" + os.path.join(out, "keys.db"), "--events", "json"])
                results.append((f"keylink {engine}, {workers} worker{'s' if workers > 1 else ''}", secs, rss))
                shutil.rmtree(out)
        base = results[0][1] if not skip_baseline else None
        for name, secs, rss in results:
            ratio = f"{base / secs:.1f}x" if base else "-"
            print(f"| {rows:,} | {name} | {secs:.2f} | {rows / secs:,.0f} | {size_mb / secs:.1f} | {rss:.0f} | {ratio} |", flush=True)
        shutil.rmtree(work)

if __name__ == "__main__":
    main()
