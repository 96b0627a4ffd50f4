import Foundation
import RobitExec
import RobitOCI
import RobitTestSupport
import Testing

/// A run's workspace (docs/sandbox.md, "The run's workspace"): an overlay over the user's directory,
/// changes on a filesystem of limits.disk bytes, the patch from the upper layer alone.
extension ExecIntegration {
    @Suite(.serialized)
    struct LayeredWorkspaceTests {
        /// A root-owned project, as a CI checkout is.
        static func rootOwnedProject() throws -> String {
            let dir = "/tmp/robit-layers-" + UUID().uuidString.lowercased().prefix(12)
            let fm = FileManager.default
            try fm.createDirectory(atPath: dir + "/src/deep", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: dir + "/gone/inner", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: dir + "/.git", withIntermediateDirectories: true)
            try "one\ntwo\n".write(toFile: dir + "/src/a.txt", atomically: false, encoding: .utf8)
            try "keep\n".write(toFile: dir + "/src/deep/keep.txt", atomically: false, encoding: .utf8)
            try "x\n".write(toFile: dir + "/gone/inner/x.txt", atomically: false, encoding: .utf8)
            try "del\n".write(toFile: dir + "/del.txt", atomically: false, encoding: .utf8)
            try "#!/bin/sh\n".write(toFile: dir + "/run.sh", atomically: false, encoding: .utf8)
            try "ref: refs/heads/main\n".write(toFile: dir + "/.git/HEAD", atomically: false, encoding: .utf8)
            try fm.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "src/a.txt")
            chmod(dir + "/run.sh", 0o644)
            _ = try HostCommand.run("/bin/chown", ["-R", "0:0", dir])
            return dir
        }

        /// Paths, types, modes, sizes, link targets and contents (directories' sizes, which differ between
        /// filesystems, only with `directories`).
        static func snapshot(_ dir: String, directories: Bool = true) throws -> String {
            let select = directories ? "" : "\\( -type f -o -type l \\)"
            let r = try HostCommand.run("/bin/sh", ["-c", "cd \"$0\" && find . -path ./.git -prune -o \(select) -printf '%p %y %m %s %l\\n' | sort && find . -path ./.git -prune -o -type f -exec sha256sum {} + | sort", dir])
            return String(decoding: r.stdout, as: UTF8.self)
        }

        @Test("the sandbox changes an overlay of a root-owned directory; the user's files stay; the patch applies",
              arguments: [RuntimeKind.runsc, .crun])
        func overlayAndPatch(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let project = try Self.rootOwnedProject()
            defer { try? FileManager.default.removeItem(atPath: project) }
            let before = try Self.snapshot(project)
            let root = "/tmp/robit-layers-root-" + UUID().uuidString.lowercased().prefix(12)
            let ws = try LayeredWorkspace.create(source: project, root: root, disk: 64 << 20, user: TestEnv.user)
            defer { ws.remove() }
            let box = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.merged, user: TestEnv.user, limits: TestEnv.limits,
                                                              policy: .builtInDefault()))
            do {
                let r = try await box.sh("""
                set -e
                id -u; python3 -c "import os; print(os.lstat('src/a.txt').st_uid)"
                echo three >> src/a.txt
                rm del.txt
                rm -r gone
                mkdir -p new/dir && printf 'new\\n' > new/dir/n.txt
                printf '\\000\\001\\002binary' > bin.dat
                printf 'spaced\\n' > 'with space.txt'
                chmod 755 run.sh
                ln -sfn src/deep/keep.txt link
                echo junk > .git/junk
                touch src/deep/keep.txt
                """)
                #expect(r.exitCode == 0 && r.stdout.text == "65532\n65532\n", "\(r.summary)")
            } catch {
                Issue.record("\(error)")
            }
            #expect(await box.destroy().isEmpty)
            #expect(try Self.snapshot(project) == before, "the user's directory changed")
            let patch = try ws.patch()
            for header in ["diff --git a/src/a.txt b/src/a.txt", "diff --git a/del.txt b/del.txt", "diff --git a/gone/inner/x.txt b/gone/inner/x.txt",
                           "diff --git a/new/dir/n.txt b/new/dir/n.txt", "diff --git a/bin.dat b/bin.dat", "diff --git a/with space.txt b/with space.txt",
                           "diff --git a/run.sh b/run.sh", "diff --git a/link b/link", "GIT binary patch", "old mode 100644", "new mode 100755"] {
                #expect(patch.contains(header), "the patch lacks \(header):\n\(patch)")
            }
            #expect(!patch.contains(".git/") && !patch.contains("keep.txt b/"), "the patch has .git or an unchanged file:\n\(patch)")
            #expect(!patch.contains("a/a/") && !patch.contains("b/b/") && !patch.contains("a/b/"), "\(patch)")
            // Applied to a copy of the user's directory, the patch gives what the sandbox left.
            let copy = project + "-applied"
            defer { try? FileManager.default.removeItem(atPath: copy) }
            _ = try HostCommand.run("/bin/cp", ["-a", project, copy])
            try Data(patch.utf8).write(to: URL(fileURLWithPath: copy + "/p.patch"))
            let apply = try HostCommand.run("/bin/sh", ["-c", "cd \"$0\" && git apply --binary p.patch && rm p.patch", copy],
                                            environment: ["PATH=/usr/bin:/bin", "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1"])
            #expect(apply.status == .exited(0), "\(String(decoding: apply.stderr, as: UTF8.self))")
            #expect(try Self.snapshot(ws.merged, directories: false) == Self.snapshot(copy, directories: false))
        }

        @Test("limits.disk: the workspace has that much room, a full disk is ENOSPC, and the sandbox still answers",
              arguments: [RuntimeKind.runsc, .crun, .runc])
        func diskLimit(runtime: RuntimeKind) async throws {
            try TestEnv.require(runtime)
            let project = try Self.rootOwnedProject()
            defer { try? FileManager.default.removeItem(atPath: project) }
            let root = "/tmp/robit-layers-root-" + UUID().uuidString.lowercased().prefix(12)
            let ws = try LayeredWorkspace.create(source: project, root: root, disk: 64 << 20, user: TestEnv.user)
            defer { ws.remove() }
            let box = try await Sandbox.create(SandboxOptions(runtime: runtime, workspace: ws.merged, user: TestEnv.user, limits: TestEnv.limits,
                                                              policy: .builtInDefault()))
            do {
                let fits = try await box.sh("head -c 60000000 /dev/zero > fits.bin && echo ok && rm fits.bin", timeout: .seconds(60))
                #expect(fits.stdout.text == "ok\n", "60 MB did not fit in 64 MiB under \(runtime): \(fits.summary)")
                let full = try await box.sh("head -c 200000000 /dev/zero > big.bin; echo status=$?; df -k /work | tail -1", timeout: .seconds(60))
                #expect(full.stdout.text.contains("status=1"), "\(full.summary)")
                #expect(full.stderr.text.contains("No space left on device"), "\(full.summary)")
                let size = full.stdout.text.split(separator: "\n").last.map { $0.split(separator: " ", omittingEmptySubsequences: true) }
                let kib = size.flatMap { $0.count > 1 ? Int($0[1]) : nil } ?? 0
                #expect(kib > 60 << 10 && kib < 72 << 10, "df shows \(kib) KiB for /work under \(runtime): \(full.summary)")
                let alive = try await box.sh("rm big.bin && echo alive")
                #expect(alive.stdout.text == "alive\n", "\(alive.summary)")
            } catch {
                Issue.record("\(error)")
            }
            #expect(await box.destroy().isEmpty)
        }

        @Test("the mounts of a killed robit are found and removed by the sweep")
        func sweepUnmountsWhatADeadRobitLeft() async throws {
            let project = try Self.rootOwnedProject()
            defer { try? FileManager.default.removeItem(atPath: project) }
            let root = "/tmp/robit-layers-root-" + UUID().uuidString.lowercased().prefix(12)
            // A child robit-like process mounts a workspace and is SIGKILLed: its mounts stay.
            let state = SandboxState.default()
            let ws = try LayeredWorkspace.create(source: project, root: root, disk: 16 << 20, user: TestEnv.user, state: state)
            defer { ws.remove() }
            let registry = state.root + "/layers"
            let files = try FileManager.default.contentsOfDirectory(atPath: registry)
            let mine = try #require(files.first { name in
                let data = FileManager.default.contents(atPath: registry + "/" + name) ?? Data()
                return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["root"] as? String == root
            })
            // Pretend its owner died: pid 1's start time differs from the one recorded for it.
            try Data(#"{"pid":2147483000,"startTime":1,"root":"\#(root)"}"#.utf8).write(to: URL(fileURLWithPath: registry + "/" + mine))
            #expect(Self.mounted(under: root).count == 3)
            let found = await Janitor.sweep(state: state, remove: true)
            #expect(found.contains { $0.kind.contains("workspace mounts") && $0.removed }, "\(found)")
            #expect(Self.mounted(under: root).isEmpty, "still mounted: \(Self.mounted(under: root))")
            #expect(!FileManager.default.fileExists(atPath: registry + "/" + mine))
        }

        static func mounted(under root: String) -> [String] {
            let text = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                return fields.count > 4 && fields[4].hasPrefix(root + "/") ? String(fields[4]) : nil
            }
        }

        @Test("patch headers name one workspace-relative path on both sides, quoted names too")
        func patchPathsAreRelative() {
            let diff = """
            diff --git a/a/m b/b/m
            --- a/a/m
            +++ b/b/m
            diff --git a/b/new b/b/new
            --- /dev/null
            +++ b/b/new
            diff --git a/a/del b/a/del
            --- a/a/del
            +++ /dev/null
            diff --git "a/b/t\\tab" "b/b/t\\tab"
            --- /dev/null
            +++ "b/b/t\\tab"
            """
            #expect(PatchPaths.relativize(diff) == """
            diff --git a/m b/m
            --- a/m
            +++ b/m
            diff --git a/new b/new
            --- /dev/null
            +++ b/new
            diff --git a/del b/del
            --- a/del
            +++ /dev/null
            diff --git "a/t\\tab" "b/t\\tab"
            --- /dev/null
            +++ "b/t\\tab"
            """)
        }
    }
}
