import Foundation
@testable import RobitAgent

/// The task.yaml example of PRODUCT.md, verbatim (comments included). Line numbers matter to the tests.
let productExample = """
version: 1
name: fix-failing-test
model:
  provider: openai            # openai | anthropic | ollama | openai-compatible | replay
  name: gpt-4.1-mini
  base_url: https://api.openai.com/v1   # optional; required for openai-compatible
  api_key_env: OPENAI_API_KEY           # read on the host only
  max_output_tokens: 4096
system: You are a careful engineer.
prompt: |
  The test suite fails. Find the cause, fix it, and run the tests.
workspace:
  path: .                     # copied or bind-mounted read-write at /work inside the sandbox
sandbox:
  runtime: runsc              # runsc | crun | runc
  rootfs: host                # host (read-only binds of /usr,/bin,/lib*,a curated /etc) | PATH to a rootfs dir
  policy: policies/default.json     # seccomp + capabilities; default = at least as strict as Docker's default
  network:
    egress: []                # allowlist: "api.github.com:443", "10.0.0.0/8:5432"... empty = no network at all
  limits: { memory: 512MiB, pids: 256, cpu: 1.0, timeout: 30s, output: 1MiB, disk: 1GiB }
tools: [shell, read_file, write_file, edit_file, list_files, search]
custom_tools:
  - name: run_tests
    description: Run the project's tests
    command: ["make", "test"]
    parameters: { type: object, properties: {}, additionalProperties: false }
budget: { max_steps: 40, max_tokens: 400000, max_wall: 20m, max_cost_usd: 2.00 }
output:
  patch: out/fix.patch
  pr: { repo: owner/name, base: main, branch: robit/fix, token_env: GITHUB_TOKEN,
        api_url: https://api.github.com }   # api_url: GitHub Enterprise or a compatible server

"""

/// The smallest valid task: lines 1-4. Tests append sections from line 5 on.
let minimalTask = """
model:
  provider: openai
  name: gpt-4.1-mini
prompt: do it

"""

/// The product example with line `number` (1-based) replaced by `text` (which may span several lines).
func example(replacingLine number: Int, with text: String) -> String {
    var lines = productExample.components(separatedBy: "\n")
    lines[number - 1] = text
    return lines.joined(separator: "\n")
}

/// The product example with `text` inserted after line `number`.
func example(inserting text: String, afterLine number: Int) -> String {
    var lines = productExample.components(separatedBy: "\n")
    lines.insert(text, at: number)
    return lines.joined(separator: "\n")
}

/// Parses `yaml` as `task.yaml` in /base, returning the error (nil when it parsed).
func parseError(_ yaml: String) -> TaskFileError? {
    do {
        _ = try TaskFile.parse(yaml, file: "task.yaml", baseDirectory: "/base")
        return nil
    } catch {
        return error
    }
}

func parse(_ yaml: String, file: String = "task.yaml") throws(TaskFileError) -> TaskFile {
    try TaskFile.parse(yaml, file: file, baseDirectory: "/base")
}

/// A fresh temporary directory, removed by the caller.
func makeTemporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "robit-taskfile-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
