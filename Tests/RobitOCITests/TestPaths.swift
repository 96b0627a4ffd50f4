import Foundation
import RobitTestSupport

/// Paths of the repository and of ../shared/reference, found from this source file.
enum TestPaths {
    static var packageRoot: String { Repository.root }

    static var reference: String { URL(fileURLWithPath: packageRoot + "/../shared/reference").standardizedFileURL.path }
    static var validator: String { reference + "/validate-oci-config.py" }
    static var dockerSeccomp: String { reference + "/seccomp/docker-default.json" }
    static var defaultPolicy: String { packageRoot + "/policies/default.json" }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "robit-oci-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs a command and returns its exit status and combined output.
    static func run(_ argv: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
