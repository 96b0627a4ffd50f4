// libFuzzer driver for robit's parsers of untrusted input; built only with ROBIT_FUZZ=1 (see Package.swift
// and scripts/fuzz). Usage: robit-fuzz TARGET [libFuzzer flags and corpus dirs/files]
// TARGET: taskfile, json, sse, schema, report, canonical. Without it, $ROBIT_FUZZ_TARGET names the target (libFuzzer's
// -fork/-merge children re-run this program with its flags only, so the target travels in the environment).
//
// SwiftPM links executables with `main` aliased to this module's entry point, so libFuzzer's own main is
// not used: this one calls LLVMFuzzerRunDriver. The code paths live in the libraries
// (AgentFuzzing, AuditFuzzing), shared with the FuzzCorpusTests that replay fuzz/corpus and fuzz/crashes.
import Foundation
import RobitAgent
import RobitAudit

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

nonisolated(unsafe) var selected: (([UInt8]) -> Void)?
nonisolated(unsafe) var scratchDirectory: String?

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    selected?(bytes)
    return 0
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data(("robit-fuzz: " + message + "\n").utf8))
    exit(2)
}

// Swift's crash backtracer would catch the trap before libFuzzer (and reads memory ASan does not allow):
// turn it off, which only works from the start of the process, so re-execute once.
if ProcessInfo.processInfo.environment["SWIFT_BACKTRACE"] == nil {
    setenv("SWIFT_BACKTRACE", "enable=no", 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    fail("cannot re-execute itself: \(String(cString: strerror(errno)))")
}

let names = AgentFuzzing.targets.keys.sorted() + ["canonical"]
var arguments = Array(UnsafeBufferPointer(start: CommandLine.unsafeArgv, count: Int(CommandLine.argc)))
var name = ProcessInfo.processInfo.environment["ROBIT_FUZZ_TARGET"] ?? ""
if arguments.count > 1, let first = arguments[1].map({ String(cString: $0) }), names.contains(first) {
    name = first
    arguments.remove(at: 1)
    setenv("ROBIT_FUZZ_TARGET", name, 1)
}
if name == "canonical" {
    let directory: String
    do { directory = try AuditFuzzing.makeDirectory() } catch { fail("cannot make a scratch directory: \(error)") }
    scratchDirectory = directory
    atexit { if let path = scratchDirectory { try? FileManager.default.removeItem(atPath: path) } }
    selected = { AuditFuzzing.canonical($0, directory: directory) }
} else if let target = AgentFuzzing.targets[name] {
    selected = target
} else {
    fail("usage: robit-fuzz TARGET [libFuzzer flags] (or ROBIT_FUZZ_TARGET=TARGET); targets: \(names.joined(separator: ", "))")
}

var argc = CInt(arguments.count)
arguments.append(nil)
let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count)
argv.initialize(from: arguments, count: arguments.count)
var argvPointer = argv
exit(LLVMFuzzerRunDriver(&argc, &argvPointer, fuzzOne))
