// swift-tools-version: 6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "robit",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "robit", targets: ["robit"]),
        .executable(name: "robit-init", targets: ["robit-init"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", exact: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "3.12.3"),
    ],
    targets: [
        .systemLibrary(name: "CSeccomp", path: "Sources/CSeccomp", pkgConfig: "libseccomp",
                       providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSQLite3", path: "Sources/CSQLite3", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCap", path: "Sources/CCap", pkgConfig: "libcap",
                       providers: [.apt(["libcap-dev"])]),
        // The in-sandbox init and exec wrapper: a static C program bind-mounted read-only at /.robit/init.
        .executableTarget(name: "robit-init", path: "Sources/robit-init",
                          cSettings: [.unsafeFlags(["-O2"])],
                          // A sanitizer runtime cannot link into a static executable: `scripts/test --sanitize`
                          // (ROBIT_SANITIZE=1) builds it dynamic and runs the release robit-init instead.
                          linkerSettings: [.unsafeFlags((Context.environment["ROBIT_SANITIZE"] == "1" ? [] : ["-static-executable"])
                                                        + ["-Xlinker", "--gc-sections", "-Xlinker", "-s"])]),
        .target(name: "CRobitSys", path: "Sources/CRobitSys"),
        // robit's one lock (a pthread mutex, which ThreadSanitizer sees): Sources/RobitSync/Locked.swift.
        .target(name: "RobitSync", swiftSettings: strict),
        // The audit log: depends on nothing of robit's but its lock, and on SHA-256/Ed25519.
        .target(name: "RobitAudit", dependencies: ["RobitSync", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: strict),
        // Pure: OCI spec types, config.json, policy data, nft ruleset text. Data in, bytes out; Foundation only.
        .target(name: "RobitOCI", swiftSettings: strict),
        .target(name: "RobitExec", dependencies: ["RobitOCI", "RobitSync", "CRobitSys", "CSeccomp", "CCap"], swiftSettings: strict),
        .target(name: "RobitAgent", dependencies: [
            "RobitExec", "RobitOCI", "RobitAudit", "RobitSync", "CCurl", "CSQLite3",
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: strict),
        .target(name: "RobitCLI", dependencies: [
            "RobitAgent", "RobitExec", "RobitOCI", "RobitAudit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        .executableTarget(name: "robit", dependencies: ["RobitCLI", "RobitExec"], swiftSettings: strict),
        // Benchmarks (scripts/bench): their code and C helpers live here, not in robit's modules.
        .target(name: "CRobitBench", path: "Sources/CRobitBench"),
        .executableTarget(name: "robit-bench", dependencies: ["RobitExec", "RobitOCI", "RobitAudit", "CRobitSys", "CRobitBench"], swiftSettings: strict),
        // What every test target shares: the checkout's root, the documented audit record layouts.
        .target(name: "RobitTestSupport", dependencies: ["RobitAudit", "RobitExec", "RobitOCI"], path: "Tests/RobitTestSupport", swiftSettings: strict),
        .testTarget(name: "RobitOCITests", dependencies: ["RobitOCI", "RobitExec", "RobitTestSupport"], swiftSettings: strict),
        .testTarget(name: "RobitExecTests", dependencies: ["RobitExec", "RobitOCI", "RobitTestSupport"], swiftSettings: strict),
        .testTarget(name: "RobitAuditTests", dependencies: ["RobitAudit", "RobitTestSupport"], swiftSettings: strict),
        .testTarget(name: "RobitAgentTests", dependencies: ["RobitAgent", "RobitExec", "RobitOCI", "RobitAudit", "RobitSync", "RobitTestSupport"], swiftSettings: strict),
        .testTarget(name: "RobitCLITests", dependencies: ["RobitCLI", "RobitAgent", "RobitExec", "RobitOCI", "RobitAudit", "RobitSync", "RobitTestSupport"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets for the parsers of untrusted input (scripts/fuzz TARGET [SECONDS]). Only declared with
// ROBIT_FUZZ=1, so a normal build or test run never compiles them.
if Context.environment["ROBIT_FUZZ"] == "1" {
    package.targets.append(
        .executableTarget(name: "robit-fuzz", dependencies: ["RobitAgent", "RobitAudit"], path: "Sources/robit-fuzz",
                          swiftSettings: strict))
}
