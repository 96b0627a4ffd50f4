#!/usr/bin/env python3
"""scripts/bench workspace: what a workspace's size adds to a one-call `robit run` (see scripts/bench)."""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--robit", required=True)
p.add_argument("--runs", type=int, default=5)
p.add_argument("--runtime", default="crun")
p.add_argument("--sizes", default="10,235,1000")
a = p.parse_args()
files_for = {10: 1000, 235: 20000, 1000: 40000}

base = tempfile.mkdtemp(prefix="robit-bench-ws-", dir="/var/tmp")
state = os.path.join(base, "state")
env = dict(os.environ, XDG_STATE_HOME=state, HOME=base)

def make_tree(path, megabytes, files):
    os.makedirs(path)
    per = megabytes * 1_000_000 // files
    chunk = os.urandom(1 << 20)
    for i in range(files):
        d = os.path.join(path, "d%03d" % (i % 200), "s%02d" % (i % 7))
        os.makedirs(d, exist_ok=True)
        size = per // 2 + (i * 7919) % per  # mean about `per`
        with open(os.path.join(d, "f%05d.txt" % i), "wb") as f:
            f.write((chunk * (size // len(chunk) + 1))[:size] if size > len(chunk) else chunk[(i * 31) % 4096:][:size])

def task(workspace):
    directory = os.path.join(base, "task-" + os.path.basename(workspace))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "script.jsonl"), "w") as f:
        f.write(json.dumps({"text": "", "tool_calls": [{"name": "shell", "arguments": {"command": "true"}}]}) + "\n")
        f.write(json.dumps({"text": "done"}) + "\n")
    path = os.path.join(directory, "task.yaml")
    with open(path, "w") as f:
        f.write(f"""version: 1
name: bench-workspace
model: {{ provider: replay, script: script.jsonl }}
prompt: bench
workspace: {{ path: {workspace} }}
sandbox: {{ runtime: {a.runtime}, limits: {{ disk: 2GiB }} }}
tools: [shell]
""")
    return path

def run(path):
    start = time.monotonic()
    r = subprocess.run([a.robit, "run", path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"robit run {path} exited {r.returncode}: {r.stderr[-2000:]}")
    return elapsed

try:
    tiny = os.path.join(base, "tiny")
    os.makedirs(tiny)
    open(os.path.join(tiny, "a.txt"), "w").write("a\n")
    tiny_task = task(tiny)
    run(tiny_task)
    floor = statistics.median(run(tiny_task) for _ in range(a.runs))
    print(f"one-call run, one-file workspace ({a.runtime}): {floor * 1000:.0f} ms (median of {a.runs})")
    for mb in [int(s) for s in a.sizes.split(",")]:
        tree = os.path.join(base, f"ws{mb}")
        make_tree(tree, mb, files_for.get(mb, max(1, mb * 85)))
        subprocess.run(["cat"], stdin=subprocess.DEVNULL)
        t = task(tree)
        first, nxt = [], []
        for _ in range(a.runs):
            shutil.rmtree(os.path.join(state, "robit", "tree-cache"), ignore_errors=True)
            first.append(run(t))
            nxt.append(run(t))
        f, n = statistics.median(first) - floor, statistics.median(nxt) - floor
        print(f"{mb:5d} MB, {files_for.get(mb, mb * 85):6d} files: first run +{f * 1000:.0f} ms, next run +{n * 1000:.0f} ms")
        shutil.rmtree(tree)
finally:
    shutil.rmtree(base, ignore_errors=True)
