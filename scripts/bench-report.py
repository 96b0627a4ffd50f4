#!/usr/bin/env python3
"""scripts/bench replay | report: what `robit audit replay` and `robit audit report --html` cost.

replay: `robit run` of examples/hello next to `robit audit replay` of that run's log, per runtime, in
        one run of this script (medians of --runs). The replay re-executes every tool call in a new
        sandbox, so its floor is the original run's own time.
report: a real 5,000-step run (scripted model, one shell call per step, every 50th with a 14 KB
        output) under crun; the time `robit audit report` takes to write its page, the page's size,
        and the page rendered in headless Chromium (scripts/browser-check, 3 times): `render_ms` is
        navigation to rendered page inside Chromium, `wall_ms` the whole browser invocation, next to
        the same browser on an empty page. Target: the 5,000-step page renders in under 2 s.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env=None):
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.monotonic() - t, r


def env_for(home):
    env = dict(os.environ)
    env["HOME"] = home
    for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "ROBIT_AUDIT_KEY"):
        env.pop(k, None)
    return env


def replay(robit, runs, runtimes):
    for runtime in runtimes:
        originals, replays = [], []
        for _ in range(runs):
            home = tempfile.mkdtemp(prefix="robit-bench-replay-")
            try:
                shutil.copytree(os.path.join(ROOT, "examples/hello"), home + "/hello", ignore=shutil.ignore_patterns("out"))
                env = env_for(home)
                t, r = timed([robit, "run", home + "/hello/task.yaml", "--runtime", runtime, "--json"], env)
                if r.returncode != 0:
                    sys.exit(f"robit run failed: {r.stderr[-500:]}")
                audit = json.loads(r.stdout)["audit_path"]
                t2, r2 = timed([robit, "audit", "replay", audit, "--json"], env)
                verdict = json.loads(r2.stdout)["verdict"] if r2.stdout.strip() else r2.stderr[-300:]
                if r2.returncode != 0:
                    sys.exit(f"robit audit replay: exit {r2.returncode}: {verdict}")
                originals.append(t)
                replays.append(t2)
            finally:
                shutil.rmtree(home, ignore_errors=True)
        a, b = statistics.median(originals), statistics.median(replays)
        print(f"{runtime}: robit run {a * 1000:.0f} ms, robit audit replay {b * 1000:.0f} ms (median of {runs}): replay / run = {b / a:.2f}x")


def browse(html, shots=None):
    args = [os.path.join(ROOT, "scripts/browser-check"), html]
    if shots:
        args += ["--screenshot", shots]
    r = subprocess.run(args, capture_output=True, text=True)
    try:
        return json.loads(r.stdout)
    except ValueError:
        sys.exit(f"scripts/browser-check failed: {r.stderr[-500:]}")


def report(robit, steps, keep=None):
    home = keep or tempfile.mkdtemp(prefix="robit-bench-report-")
    if keep and os.path.exists(home + "/summary.json"):
        return render(robit, home)
    try:
        os.makedirs(home + "/task/project", exist_ok=True)
        with open(home + "/task/project/README", "w") as f:
            f.write("bench\n")
        with open(home + "/task/script.jsonl", "w") as f:
            for i in range(1, steps + 1):
                command = "seq 1 3000" if i % 50 == 0 else f"echo step {i}"
                f.write(json.dumps({"text": f"Step {i}.", "tool_calls": [{"name": "shell", "arguments": {"command": command}}],
                                    "usage": {"input_tokens": 100, "output_tokens": 10}}) + "\n")
            f.write(json.dumps({"text": "Done."}) + "\n")
        with open(home + "/task/task.yaml", "w") as f:
            f.write(f"""version: 1
name: bench-report
model: {{ provider: replay, script: script.jsonl }}
prompt: Run the steps.
workspace: {{ path: project }}
sandbox: {{ runtime: crun, rootfs: host, network: {{ egress: [] }} }}
tools: [shell]
budget: {{ max_steps: {steps + 1}, max_tokens: 100000000, max_wall: 60m }}
""")
        env = env_for(home)
        print(f"running a {steps}-step task under crun ...", file=sys.stderr)
        t, r = timed([robit, "run", home + "/task/task.yaml", "--json"], env)
        if r.returncode != 0:
            sys.exit(f"robit run failed: {r.stderr[-500:]}")
        summary = json.loads(r.stdout)
        with open(home + "/summary.json", "w") as f:
            f.write(r.stdout)
        print(f"run: {summary['steps']} steps, {summary['tool_calls']} tool calls in {t:.1f} s")
        render(robit, home)
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def render(robit, home):
        env = env_for(home)
        summary = json.load(open(home + "/summary.json"))
        audit = summary["audit_path"]
        log_mb = os.path.getsize(audit) / 1e6
        print(f"log {log_mb:.1f} MB")
        html = home + "/report.html"
        tr, rr = timed([robit, "audit", "report", audit, "--html", html], env)
        if rr.returncode != 0:
            sys.exit(f"robit audit report failed: {rr.stderr}")
        print(f"robit audit report: {tr * 1000:.0f} ms, page {os.path.getsize(html) / 1e6:.1f} MB")
        empty = home + "/empty.html"
        with open(empty, "w") as f:
            f.write("<!DOCTYPE html><title>empty</title><p>empty</p>")
        floor = [browse(empty) for _ in range(3)]
        pages = [browse(html, os.path.join(ROOT, ".build/bench-report.png") if i == 0 else None) for i in range(3)]
        for p in pages:
            if not p.get("ok"):
                sys.exit(f"the page did not load cleanly: {json.dumps(p)[:800]}")
        med = lambda xs, k: statistics.median(x[k] for x in xs)
        print(f"chromium {pages[0].get('chromium')}: empty page render {med(floor, 'render_ms'):.0f} ms, wall {med(floor, 'wall_ms'):.0f} ms")
        print(f"{summary['steps']}-step page: render {med(pages, 'render_ms'):.0f} ms (runs: {', '.join(str(round(p['render_ms'])) for p in pages)}), "
              f"wall {med(pages, 'wall_ms'):.0f} ms; requests {sum(len(p.get('requests', [])) for p in pages)}; target: render < 2000 ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["replay", "report"])
    ap.add_argument("--robit", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runtime", action="append")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--keep", help="report: keep the run in this directory, and reuse it when it is there")
    a = ap.parse_args()
    if a.what == "replay":
        replay(a.robit, a.runs, a.runtime or ["runsc", "crun"])
    else:
        report(a.robit, a.steps, a.keep)


if __name__ == "__main__":
    main()
