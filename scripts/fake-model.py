#!/usr/bin/env python3
"""An instant local model for `scripts/bench loop`: OpenAI Chat Completions, streamed (SSE), on 127.0.0.1.

Every POST .../chat/completions is answered at once. The model name says how many steps a run takes
("fake-steps-1000"): while the request holds fewer tool results than that, the answer is one call of the
tool `noop` with the arguments {"step": K} (K differs each step, so robit's repeat detection never
fires); then a final answer without calls. The server keeps no per-run state besides what it measures.

    python3 scripts/fake-model.py [PORT]      prints "http://127.0.0.1:PORT/v1" once listening

Control endpoints, for the benchmark driver:
    GET  /stats             {"requests", "handle_ns", "rss": {step: [VmRSS KiB, VmHWM KiB]}} since the last reset
    POST /reset?pid=P       clears the counters; the RSS of process P is then sampled as each request arrives
Stdlib only.
"""
import json
import os
import re
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATE = {"requests": 0, "handle_ns": 0, "pid": None, "rss": {}}
MODEL_STEPS = re.compile(rb'"model"\s*:\s*"fake-steps-(\d+)"')


def rss_of(pid):
    """VmRSS and VmHWM of a process, in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        return [int(fields[b"VmRSS"].split()[0]), int(fields[b"VmHWM"].split()[0])]
    except (OSError, KeyError, ValueError):
        return None


def sse(chunks):
    return b"".join(b"data: " + json.dumps(c, separators=(",", ":")).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def answer(body):
    match = MODEL_STEPS.search(body)
    steps = int(match.group(1)) if match else 1
    done = body.count(b'"tool_call_id"')
    base = {"id": f"fake-{done}", "object": "chat.completion.chunk", "created": 0, "model": f"fake-steps-{steps}"}
    usage = {"prompt_tokens": len(body) // 4, "completion_tokens": 12, "total_tokens": len(body) // 4 + 12}
    if done < steps:
        call = {"index": 0, "id": f"call_{done}", "type": "function",
                "function": {"name": "noop", "arguments": json.dumps({"step": done})}}
        chunks = [
            dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": None, "tool_calls": [call]}, "finish_reason": None}]),
            dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        ]
    else:
        chunks = [
            dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": f"Done after {done} steps."}, "finish_reason": None}]),
            dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        ]
    chunks.append(dict(base, choices=[], usage=usage))
    return done, sse(chunks)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, status, content_type, payload):
        head = (f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nCache-Control: no-cache\r\n\r\n").encode()
        self.wfile.write(head + payload)  # one write: no Nagle/delayed-ACK stall between head and body

    def do_GET(self):
        if self.path.startswith("/stats"):
            self.reply(200, "application/json", json.dumps(STATE).encode())
        else:
            self.reply(404, "text/plain", b"not found\n")

    def parse_request(self):
        # The model's own time starts once robit's request line is in: parsing the headers in Python
        # is the fake model's cost, not robit's.
        self.started_ns = time.perf_counter_ns()
        return super().parse_request()

    def do_POST(self):
        start = self.started_ns
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.startswith("/reset"):
            pid = re.search(r"pid=(\d+)", self.path)
            STATE.update(requests=0, handle_ns=0, pid=int(pid.group(1)) if pid else None, rss={})
            self.reply(200, "application/json", b"{}")
            return
        if not self.path.endswith("/chat/completions"):
            self.reply(404, "text/plain", b"not found\n")
            return
        done, payload = answer(body)
        if STATE["pid"] is not None:
            # Sampled while robit waits for this answer: its RSS after `done` steps.
            sample = rss_of(STATE["pid"])
            if sample:
                STATE["rss"][str(done)] = sample
        self.reply(200, "text/event-stream", payload)
        STATE["requests"] += 1
        STATE["handle_ns"] += time.perf_counter_ns() - start


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
