// Swift 6.3.1 (x86_64 Linux) miscompiles this with -O: a task closure that returns a tuple built as
// `(i, try await f())` inside `do { } catch { }` gives back a wrong first element (0 or a stale
// value). -Onone is correct; -O with every SIL optimization off (-Xllvm -sil-opt-pass-count=0) is
// still wrong; -O with LLVM's optimizations off (-Xfrontend -disable-llvm-optzns) is correct.
// It crashed robit's ToolRegistry (docs/compiler-bugs.md).
//
//   swiftc -O docs/compiler-bugs/task-closure-tuple.swift -o /tmp/tct && /tmp/tct
//
// Each line names one form and says `ok` or `wrong`. robit uses only forms that print `ok`.
struct E: Error {}

@inline(never) func value(_ i: Int) async throws -> String {
    await Task.yield()
    if i < 0 { throw E() }
    return "v\(i)"
}

struct Indexed: Sendable { var index: Int; var value: String }

func check(_ name: String, _ body: @escaping @Sendable (Int) async -> Int) async -> Bool {
    var right = true
    for i in 1...3 where await body(i) != i { right = false }
    print("\(name): \(right ? "ok" : "wrong")")
    return right
}

var workaroundsHold = true
// The miscompiled form: a tuple literal around `try await`, returned from inside `do`.
_ = await check("Task, return (i, try await f()) in do/catch") { i in
    await Task { () async -> (Int, String) in
        do { return (i, try await value(i)) } catch { return (i, "") }
    }.value.0
}
_ = await check("addTask, return (i, .success(try await f())) in do/catch") { i in
    await withTaskGroup(of: (Int, Result<String, E>).self) { group in
        group.addTask { do { return (i, .success(try await value(i))) } catch { return (i, .failure(E())) } }
        return await group.next()!.0
    }
}
// The forms robit uses instead.
workaroundsHold = await check("addTask, result bound first, then a struct") { i in
    await withTaskGroup(of: Indexed.self) { group in
        group.addTask {
            let v: String
            do { v = try await value(i) } catch { v = "" }
            return Indexed(index: i, value: v)
        }
        return await group.next()!.index
    }
} && workaroundsHold
workaroundsHold = await check("Task, value bound first, then the tuple") { i in
    await Task { () async -> (Int, String) in
        do { let v = try await value(i); return (i, v) } catch { return (i, "") }
    }.value.0
} && workaroundsHold
workaroundsHold = await check("Task, struct built around try await") { i in
    await Task { () async -> Indexed in
        do { return Indexed(index: i, value: try await value(i)) } catch { return Indexed(index: i, value: "") }
    }.value.index
} && workaroundsHold
print(workaroundsHold ? "workarounds: ok" : "workarounds: wrong")
