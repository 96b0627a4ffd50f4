/// A process as the compact JSON of `runtime exec --process FILE`, written by hand: robit writes one
/// for every command a model runs, and JSONEncoder took about a tenth of a millisecond for it.
/// Decodes to the same `Process` (tested against `JSONDecoder`); optional fields that are nil are left out.
extension Process {
    public var compactJSON: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        var object = JSONObjectWriter(into: &out)
        if let terminal { object.key("terminal", &out); JSONText.bool(terminal, into: &out) }
        object.key("user", &out)
        var userObject = JSONObjectWriter(into: &out)
        userObject.key("uid", &out); JSONText.integer(user.uid, into: &out)
        userObject.key("gid", &out); JSONText.integer(user.gid, into: &out)
        if let umask = user.umask { userObject.key("umask", &out); JSONText.integer(umask, into: &out) }
        if let gids = user.additionalGids {
            userObject.key("additionalGids", &out)
            JSONText.array(gids, into: &out) { JSONText.integer($0, into: &$1) }
        }
        userObject.close(&out)
        object.key("args", &out); JSONText.strings(args, into: &out)
        if let env { object.key("env", &out); JSONText.strings(env, into: &out) }
        object.key("cwd", &out); JSONText.string(cwd, into: &out)
        if let capabilities {
            object.key("capabilities", &out)
            var sets = JSONObjectWriter(into: &out)
            for (name, list) in [("bounding", capabilities.bounding), ("effective", capabilities.effective),
                                 ("inheritable", capabilities.inheritable), ("permitted", capabilities.permitted),
                                 ("ambient", capabilities.ambient)] {
                sets.key(name, &out)
                JSONText.strings(list, into: &out)
            }
            sets.close(&out)
        }
        if let rlimits {
            object.key("rlimits", &out)
            JSONText.array(rlimits, into: &out) { limit, out in
                var entry = JSONObjectWriter(into: &out)
                entry.key("type", &out); JSONText.string(limit.type, into: &out)
                entry.key("hard", &out); JSONText.integer(limit.hard, into: &out)
                entry.key("soft", &out); JSONText.integer(limit.soft, into: &out)
                entry.close(&out)
            }
        }
        if let noNewPrivileges { object.key("noNewPrivileges", &out); JSONText.bool(noNewPrivileges, into: &out) }
        if let oomScoreAdj { object.key("oomScoreAdj", &out); JSONText.integer(oomScoreAdj, into: &out) }
        object.close(&out)
        return out
    }
}

/// `{` then `"key":` members separated by commas, then `}`.
struct JSONObjectWriter {
    private var empty = true

    init(into out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
    }

    mutating func key(_ key: String, _ out: inout [UInt8]) {
        if !empty { out.append(UInt8(ascii: ",")) }
        empty = false
        JSONText.string(key, into: &out)
        out.append(UInt8(ascii: ":"))
    }

    func close(_ out: inout [UInt8]) {
        out.append(UInt8(ascii: "}"))
    }
}
