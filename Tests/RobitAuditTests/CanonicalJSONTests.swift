import Foundation
import Testing
@testable import RobitAudit

@Suite struct CanonicalJSONTests {
    func encoded(_ value: AuditValue) throws -> String { String(decoding: try CanonicalJSON.encode(value), as: UTF8.self) }

    @Test func fixedExamples() throws {
        #expect(try encoded(["b": 1, "a": [true, false, nil], "c": "x/y\"\\\n\t\u{0}\u{1f}\u{7f}é😀"]) ==
            #"{"a":[true,false,null],"b":1,"c":"x/y\"\\\n\t\u0000\u001f\#u{7f}é😀"}"#)
        #expect(try encoded(["\u{10000}": 1, "\u{FFFF}": 2]) == "{\"\u{FFFF}\":2,\"\u{10000}\":1}")
        // Canonically equivalent keys are still different keys, ordered by code point.
        #expect(try encoded(["e\u{301}": 1, "\u{e9}": 2]) == "{\"e\u{301}\":1,\"\u{e9}\":2}")
        #expect(try encoded(.int(-AuditValue.maxInteger)) == "-9007199254740991")
        #expect(try encoded(["\u{8}\u{c}\r": 0]) == #"{"\b\f\r":0}"#)
    }

    @Test func rejectsWhatTheFormatCannotHold() {
        #expect(throws: AuditError.self) { try CanonicalJSON.encode(.int(AuditValue.maxInteger + 1)) }
        #expect(throws: AuditError.self) { try CanonicalJSON.encode(["a": 1, "b": ["a": 1, "a": 2]]) }
        var deep: AuditValue = 1
        for _ in 0..<70 { deep = [deep] }
        #expect(throws: AuditError.self) { try CanonicalJSON.encode(deep) }
    }

    /// Random records, encoded by robit, must be exactly what Python's json.dumps(sort_keys=True,
    /// separators=(",", ":"), ensure_ascii=False) prints for them.
    @Test func matchesPythonOnRandomValues() throws {
        var rng = SplitMix(seed: 0x5EED)
        var lines: [String] = []
        for i in 0..<400 {
            let value = randomValue(&rng, depth: 0, huge: i % 50 == 0)
            lines.append(try encoded(value))
        }
        let input = Data((lines.joined(separator: "\n") + "\n").utf8)
        let script = """
            import json, sys
            for line in sys.stdin.buffer.read().decode('utf-8').split('\\n')[:-1]:
                sys.stdout.write(json.dumps(json.loads(line), sort_keys=True, separators=(',', ':'), ensure_ascii=False) + '\\n')
            """
        let output = String(decoding: try AuditTestSupport.runPython(script, input: input), as: UTF8.self)
        let back = output.components(separatedBy: "\n").dropLast()
        #expect(back.count == lines.count)
        for (ours, python) in zip(lines, back) where ours != python {
            Issue.record("differs from Python:\nours   \(ours.prefix(300))\npython \(python.prefix(300))")
            break
        }
        // And the verifier's scanner accepts each as canonical, decoding it back to the same value.
        for line in lines.prefix(100) {
            let bytes = Array(line.utf8)
            try bytes.withUnsafeBufferPointer { buffer in
                var scanner = CanonicalScanner(buffer)
                try scanner.skipValue()
                #expect(scanner.position == buffer.count)
            }
        }
    }

    @Test func scannerRejectsNonCanonicalForms() {
        let bad = [
            #"{"a": 1}"#, #"{"b":1,"a":2}"#, #"{"a":1,"a":1}"#, #"{"a":"\/"}"#, #"{"a":"\u00e9"}"#, #"{"a":"\u001F"}"#,
            #"{"a":"\u000a"}"#, #"{"a":1.0}"#, #"{"a":1e3}"#, #"{"a":-0}"#, #"{"a":01}"#, #"{"a":9007199254740992}"#,
            #"{"a":"x"} "#, #"{"a":NaN}"#, "{\"a\":\"\u{1}\"}", #"{"a":tru}"#, #"{"a":[1,]}"#, #"{"a":"\x"}"#,
        ]
        for text in bad {
            let bytes = Array(text.utf8)
            let accepted = bytes.withUnsafeBufferPointer { buffer -> Bool in
                var scanner = CanonicalScanner(buffer)
                return (try? scanner.skipValue()) != nil && scanner.position == buffer.count
            }
            #expect(!accepted, "accepted non-canonical \(text)")
        }
        for invalidUTF8: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE0, 0x80, 0xAF], [0xFF], [0xC3]] {
            let bytes = Array(#"{"a":""#.utf8) + invalidUTF8 + Array(#""}"#.utf8)
            let accepted = bytes.withUnsafeBufferPointer { buffer -> Bool in
                var scanner = CanonicalScanner(buffer)
                return (try? scanner.skipValue()) != nil
            }
            #expect(!accepted, "accepted invalid UTF-8 \(invalidUTF8)")
        }
    }

    func randomValue(_ rng: inout SplitMix, depth: Int, huge: Bool = false) -> AuditValue {
        let kind = depth > 3 ? rng.next() % 4 : rng.next() % 6
        switch kind {
        case 0: return .null
        case 1: return .bool(rng.next() % 2 == 0)
        case 2: return .int(Int64(bitPattern: rng.next()) % AuditValue.maxInteger)
        case 3: return .string(randomString(&rng, length: huge ? 200_000 : Int(rng.next() % 40)))
        case 4: return .array((0..<Int(rng.next() % 5)).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            var members: [(String, AuditValue)] = []
            var seen = Set<[UInt8]>()
            for _ in 0..<Int(rng.next() % 6) {
                let key = randomString(&rng, length: Int(rng.next() % 8))
                if seen.insert(Array(key.utf8)).inserted { members.append((key, randomValue(&rng, depth: depth + 1))) }
            }
            return .object(members)
        }
    }

    func randomString(_ rng: inout SplitMix, length: Int) -> String {
        let pools: [ClosedRange<UInt32>] = [0x00...0x1F, 0x20...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<length {
            let pool = pools[Int(rng.next() % UInt64(pools.count))]
            let v = pool.lowerBound + UInt32(rng.next() % UInt64(pool.count))
            if let s = Unicode.Scalar(v) { scalars.append(s) } else { scalars.append("\"") }
        }
        return String(scalars)
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
