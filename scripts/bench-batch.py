#!/usr/bin/env python3
"""scripts/bench batch: throughput of `robit batch` with --jobs 1 and --jobs 2, in one run.

20 short tasks (default), each a `robit run` of 3 steps against the instant fake model
(scripts/fake-model.py, OpenAI Chat Completions SSE on 127.0.0.1) with a no-op custom tool, each in its
own sandbox. The batch is timed as a whole (wall clock); throughput is tasks per second. Target: >= 1.7x
with 2 jobs on 2 cores. Runs alternate (jobs 1, jobs 2, jobs 1, ...) so drift hits both; medians.
Also printed: how many cores the whole machine kept busy during each batch (/proc/stat), which bounds
what a second job can add: a batch at --jobs 1 that already keeps 1.4 of 2 cores busy cannot run
more than 2 / 1.4 = 1.43x faster with two jobs.

    python3 scripts/bench-batch.py --robit .build/release/robit [--tasks 20] [--rounds 3] [--runtime runsc]...
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TASK = """version: 1
name: bench-batch-{index:02d}
model:
  provider: openai-compatible
  name: fake-steps-{steps}
  base_url: {url}
system: Call noop until the benchmark is over.
prompt: Benchmark robit batch.
workspace:
  path: ../project
sandbox:
  runtime: {runtime}
  rootfs: host
  network:
    egress: []
tools: []
custom_tools:
  - name: noop
    description: Does nothing
    command: ["true", "{{{{step}}}}"]
    parameters: {{ type: object, properties: {{ step: {{ type: integer }} }}, additionalProperties: false }}
budget: {{ max_steps: 50 }}
"""


def busy():
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--robit", required=True)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runtime", action="append")
    o = ap.parse_args()
    runtimes = o.runtime or ["runsc", "crun"]
    robit = os.path.abspath(o.robit)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = tempfile.mkdtemp(prefix="robit-bench-batch.")
    model = subprocess.Popen([sys.executable, os.path.join(root, "scripts/fake-model.py")], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        url = model.stdout.readline().strip()
        os.makedirs(os.path.join(work, "project"))
        with open(os.path.join(work, "project", "README"), "w") as f:
            f.write("bench\n")
        env = dict(os.environ, XDG_STATE_HOME=os.path.join(work, "state"))
        print(f"batch benchmark: {o.tasks} tasks of {o.steps} steps (fake model on 127.0.0.1, custom tool noop), "
              f"`robit batch DIR --jobs N`, {o.rounds} rounds, wall clock per batch; {os.cpu_count()} cores")
        for runtime in runtimes:
            tasks = os.path.join(work, "tasks-" + runtime)
            os.makedirs(tasks)
            for i in range(o.tasks):
                with open(os.path.join(tasks, f"t{i:02d}.yaml"), "w") as f:
                    f.write(TASK.format(index=i, steps=o.steps, url=url, runtime=runtime))
            walls = {1: [], 2: []}
            cores = {1: [], 2: []}
            for _ in range(o.rounds):
                for jobs in (1, 2):
                    start = time.monotonic()
                    b0, t0 = busy()
                    r = subprocess.run([robit, "batch", tasks, "--jobs", str(jobs), "--json"], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    wall = time.monotonic() - start
                    b1, t1 = busy()
                    cores[jobs].append((os.cpu_count() or 1) * (b1 - b0) / max(1, t1 - t0))
                    rows = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
                    done = sum(1 for row in rows if row.get("status") == "done")
                    if r.returncode != 0 or done != o.tasks:
                        print(f"  {runtime} --jobs {jobs}: exit {r.returncode}, {done}/{o.tasks} done\n{r.stderr[-2000:]}", file=sys.stderr)
                        sys.exit(1)
                    walls[jobs].append(wall)
            one, two = statistics.median(walls[1]), statistics.median(walls[2])
            print(f"  {runtime:5}  --jobs 1: {one:6.2f} s ({o.tasks / one:5.2f} tasks/s)   --jobs 2: {two:6.2f} s ({o.tasks / two:5.2f} tasks/s)"
                  f"   throughput x{one / two:.2f} (target >= 1.7)   runs: " +
                  " ".join(f"{w:.2f}" for w in walls[1]) + " | " + " ".join(f"{w:.2f}" for w in walls[2]))
            c1, c2 = statistics.median(cores[1]), statistics.median(cores[2])
            print(f"         cores busy: --jobs 1 {c1:.2f}, --jobs 2 {c2:.2f} of {os.cpu_count()}; bound for --jobs 2: "
                  f"x{min(2.0, (os.cpu_count() or 1) / max(c1, 0.01)):.2f}")
    finally:
        model.kill()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
