import Foundation
@testable import RobitAgent
import Testing

struct SchemaValidatorTests {
    func errors(_ schema: JSONValue, _ instance: JSONValue) throws -> [String] {
        try JSONSchema(schema).validate(instance).map(\.description)
    }

    @Test func types() throws {
        #expect(try errors(["type": "string"], "x").isEmpty)
        #expect(try errors(["type": "string"], 1) == ["/: expected string, found number"])
        #expect(try errors(["type": "integer"], 3).isEmpty)
        #expect(try errors(["type": "integer"], 3.0).isEmpty)
        #expect(try errors(["type": "integer"], 3.5) == ["/: expected integer, found number"])
        #expect(try errors(["type": "number"], 3).isEmpty)
        #expect(try errors(["type": "boolean"], "true") == ["/: expected boolean, found string"])
        #expect(try errors(["type": "null"], nil).isEmpty)
        #expect(try errors(["type": "array"], [:]) == ["/: expected array, found object"])
        #expect(try errors(["type": ["string", "null"]], nil).isEmpty)
        #expect(try errors(["type": ["string", "null"]], 1) == ["/: expected string or null, found number"])
        #expect(try errors(["type": "string", "nullable": true], nil).isEmpty)
        #expect(try errors(["type": "string", "nullable": false], nil) == ["/: expected string, found null"])
    }

    @Test func objects() throws {
        let schema: JSONValue = [
            "type": "object",
            "properties": ["path": ["type": "string"], "n": ["type": "integer"], "a/b~c": ["type": "boolean"]],
            "required": ["path"],
            "additionalProperties": false,
        ]
        #expect(try errors(schema, ["path": "x", "n": 2]).isEmpty)
        #expect(try errors(schema, ["n": 2]) == ["/: missing required property \"path\""])
        #expect(try errors(schema, ["path": 1]) == ["/path: expected string, found number"])
        #expect(try errors(schema, ["path": "x", "a/b~c": 1]) == ["/a~1b~0c: expected boolean, found number"])
        #expect(try errors(schema, ["path": "x", "evil": 1]) == ["/evil: unknown property; allowed: a/b~c, n, path"])
        let extra: JSONValue = ["type": "object", "additionalProperties": ["type": "string"]]
        #expect(try errors(extra, ["a": "x"]).isEmpty)
        #expect(try errors(extra, ["a": 1]) == ["/a: expected string, found number"])
        #expect(try errors(["minProperties": 1, "maxProperties": 1], [:]) == ["/: must have at least 1 properties"])
        #expect(try errors(["minProperties": 1, "maxProperties": 1], ["a": 1, "b": 2]) == ["/: must have at most 1 properties"])
    }

    @Test func arrays() throws {
        let schema: JSONValue = ["type": "array", "items": ["type": "string", "minLength": 1], "minItems": 1, "maxItems": 2]
        #expect(try errors(schema, ["a"]).isEmpty)
        #expect(try errors(schema, []) == ["/: must have at least 1 items, found 0"])
        #expect(try errors(schema, ["a", "b", "c"]) == ["/: must have at most 2 items, found 3"])
        #expect(try errors(schema, ["a", ""]) == ["/1: must be at least 1 characters long, found 0"])
        #expect(try errors(["uniqueItems": true], [1, 1.0]) == ["/: items must be unique"])
        let nested: JSONValue = ["type": "object", "properties": ["list": ["type": "array", "items": ["type": "object", "properties": ["x": ["type": "integer"]]]]]]
        #expect(try errors(nested, ["list": [["x": 1], ["x": "no"]]]) == ["/list/1/x: expected integer, found string"])
    }

    @Test func stringsAndNumbers() throws {
        #expect(try errors(["maxLength": 3], "😀😀😀").isEmpty, "code points, not bytes")
        #expect(try errors(["maxLength": 3], "abcd") == ["/: must be at most 3 characters long, found 4"])
        #expect(try errors(["pattern": "^[a-z]+$"], "abc").isEmpty)
        #expect(try errors(["pattern": "^[a-z]+$"], "ab1") == ["/: must match the pattern ^[a-z]+$"])
        #expect(try errors(["pattern": "b"], "abc").isEmpty, "unanchored, as in ECMA-262")
        #expect(try errors(["minimum": 1, "maximum": 3], 0) == ["/: must be at least 1, found 0"])
        #expect(try errors(["minimum": 1, "maximum": 3], 3).isEmpty)
        #expect(try errors(["exclusiveMinimum": 1], 1) == ["/: must be greater than 1, found 1"])
        #expect(try errors(["exclusiveMaximum": 1.5], 1.5) == ["/: must be less than 1.5, found 1.5"])
        #expect(try errors(["multipleOf": 0.5], 1.5).isEmpty)
        #expect(try errors(["multipleOf": 2], 3) == ["/: must be a multiple of 2"])
        #expect(try errors(["minLength": 2], 5).isEmpty, "string keywords do not apply to numbers")
    }

    @Test func enumAndConst() throws {
        #expect(try errors(["enum": ["a", 1, nil]], 1).isEmpty)
        #expect(try errors(["enum": ["a", 1, nil]], "b") == [#"/: must be one of "a", 1, null, found "b""#])
        #expect(try errors(["const": ["x": 1]], ["x": 1]).isEmpty)
        #expect(try errors(["const": "x"], "y") == [#"/: must be "x""#])
    }

    @Test func combinators() throws {
        let any: JSONValue = ["anyOf": [["type": "string"], ["type": "integer", "minimum": 0]]]
        #expect(try errors(any, "x").isEmpty)
        #expect(try errors(any, 5).isEmpty)
        #expect(try errors(any, -1).first?.contains("does not match any of the 2 allowed forms") == true)
        let one: JSONValue = ["oneOf": [["type": "number"], ["type": "integer"]]]
        #expect(try errors(one, 1.5).isEmpty)
        #expect(try errors(one, 1) == ["/: must match exactly one of the 2 allowed forms, matches 2"])
        let all: JSONValue = ["allOf": [["minLength": 2], ["maxLength": 3]]]
        #expect(try errors(all, "abcd") == ["/: must be at most 3 characters long, found 4"])
        #expect(try errors(["not": ["type": "null"]], nil) == ["/: must not match the schema under \"not\""])
        #expect(try errors(false, 1) == ["/: no value is allowed here"])
        #expect(try errors(true, 1).isEmpty)
    }

    @Test func annotationsAreIgnoredAndUnknownKeywordsRefused() throws {
        #expect(try errors(["type": "string", "description": "d", "title": "t", "default": "x", "examples": ["y"], "format": "uri",
                            "$schema": "https://json-schema.org/draft/2020-12/schema"], "z").isEmpty)
        for bad: JSONValue in [
            ["$ref": "#/$defs/x"], ["properties": ["a": ["if": true]]], ["prefixItems": []], ["type": "float"], ["type": []],
            ["minLength": -1], ["minLength": 1.5], ["pattern": "("], ["required": "a"], ["anyOf": []], ["multipleOf": 0],
            ["items": 5], "string", ["properties": ["a": ["patternProperties": [:]]]],
        ] {
            #expect(throws: JSONSchemaError.self, "\(bad.compactText)") { try JSONSchema(bad) }
        }
        do {
            _ = try JSONSchema(["properties": ["a": ["if": true]]])
        } catch {
            #expect(error.description.hasPrefix("schema /properties/a/if: the keyword \"if\" is not supported"))
        }
    }

    @Test func hostileInstancesDoNotCrash() throws {
        let schema = try JSONSchema(["type": "object", "properties": ["a": ["type": "array", "items": ["type": "array"]]]])
        // Deepest nesting the parser lets through.
        let deep = try JSONValue.parse("{\"a\":" + String(repeating: "[", count: 127) + String(repeating: "]", count: 127) + "}")
        #expect(schema.validate(deep).isEmpty)
        let wide = JSONValue.object(Dictionary(uniqueKeysWithValues: (0..<10_000).map { ("k\($0)", JSONValue.number(Double($0))) }))
        let strict = try JSONSchema(["type": "object", "additionalProperties": false])
        #expect(strict.validate(wide).count == 10_000)
        let long = JSONValue.string(String(repeating: "a", count: 1 << 20))
        #expect(try JSONSchema(["maxLength": 10]).validate(long).count == 1)
    }
}
