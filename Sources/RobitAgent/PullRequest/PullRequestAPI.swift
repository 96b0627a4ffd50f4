import Foundation

/// The pull request endpoints of GitHub's REST API, and of servers that implement the same
/// `POST /repos/{owner}/{repo}/pulls` (GitHub Enterprise, Gitea, Forgejo), over libcurl. The token
/// travels only in the Authorization header.
struct PullRequestAPI: Sendable {
    /// The API root without a trailing slash, e.g. `https://api.github.com` or `https://ghe.example/api/v3`.
    var apiURL: String
    /// `owner/name`.
    var repo: String
    var token: String
    /// The variable the token came from, for messages.
    var tokenEnv: String
    var robitVersion: String

    enum Outcome: Sendable, Equatable {
        case created(url: String, number: Int?)
        /// A pull request for the branch was already open (GitHub's 422 "A pull request already exists").
        case existing(url: String, number: Int?)
    }

    struct Failure: Error, Sendable {
        var message: String
    }

    init(apiURL: String, repo: String, token: String, tokenEnv: String, robitVersion: String) {
        var root = apiURL
        while root.hasSuffix("/") { root.removeLast() }
        self.apiURL = root
        self.repo = repo
        self.token = token
        self.tokenEnv = tokenEnv
        self.robitVersion = robitVersion
    }

    private var owner: String { String(repo.split(separator: "/").first ?? "") }

    /// Opens a pull request of `head` (a branch of `repo`) into `base`, or finds the one already open.
    func open(title: String, body: String, head: String, base: String, draft: Bool) async throws(Failure) -> Outcome {
        let payload: [(String, WireJSON)] = [("title", .string(title)), ("head", .string(head)), ("base", .string(base)),
                                             ("body", .string(body)), ("draft", .bool(draft)), ("maintainer_can_modify", .bool(true))]
        let response = try await send(HTTPRequest(url: apiURL + "/repos/" + repo + "/pulls", headers: headers(json: true),
                                                  body: WireJSON.object(payload).text))
        let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        switch response.head.status {
        case 201, 200:
            guard let url = object["html_url"] as? String else {
                throw Failure(message: "\(apiURL) answered \(response.head.status) without the pull request's html_url")
            }
            return .created(url: url, number: object["number"] as? Int)
        case 422 where Self.alreadyExists(object), 409 where Self.alreadyExists(object):
            if let found = try await openPull(head: head, base: base) { return .existing(url: found.url, number: found.number) }
            throw Failure(message: "\(apiURL) says a pull request for \(owner):\(head) already exists, but lists none open into \(base)")
        default:
            throw Failure(message: explain(response.head.status, object))
        }
    }

    /// The open pull request of `owner:head` into `base`, if any.
    func openPull(head: String, base: String) async throws(Failure) -> (url: String, number: Int?)? {
        let query = "head=" + Self.queryEscaped(owner + ":" + head) + "&base=" + Self.queryEscaped(base) + "&state=open"
        let response = try await send(HTTPRequest(method: "GET", url: apiURL + "/repos/" + repo + "/pulls?" + query,
                                                  headers: headers(json: false), body: ""))
        guard response.head.status == 200 else {
            let object = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            throw Failure(message: explain(response.head.status, object))
        }
        let list = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [[String: Any]] ?? []
        // Gitea and Forgejo ignore `head`: keep only the pull requests whose head and base are these.
        func ref(_ pull: [String: Any], _ key: String) -> String? { (pull[key] as? [String: Any])?["ref"] as? String }
        let match = list.first { pull in
            (ref(pull, "head").map { $0 == head } ?? true) && (ref(pull, "base").map { $0 == base } ?? true)
        }
        guard let match, let url = match["html_url"] as? String else { return nil }
        return (url, match["number"] as? Int)
    }

    private func headers(json: Bool) -> [String] {
        var lines = ["Accept: application/vnd.github+json", "X-GitHub-Api-Version: 2022-11-28", "Authorization: Bearer " + token,
                     "User-Agent: robit/" + robitVersion]
        if json { lines.append("Content-Type: application/json") }
        return lines
    }

    private struct Ignore: HTTPStreamConsumer {
        mutating func consume(_ bytes: UnsafeRawBufferPointer) throws(AttemptError) {}
    }

    private func send(_ request: HTTPRequest) async throws(Failure) -> HTTPExchange<some HTTPStreamConsumer> {
        let limits = HTTPLimits(connectTimeout: .seconds(15), idleTimeout: .seconds(60), totalTimeout: .seconds(120), maxResponseBytes: 4 << 20)
        switch await HTTPTransfer.post(request, limits: limits, connection: HTTPConnectionCache(), consumer: Ignore()) {
        case .success(let exchange): return exchange
        case .failure(let error): throw Failure(message: "cannot reach \(apiURL): \(error.error.message)")
        }
    }

    /// GitHub's 422 for a second pull request of the same branch: `errors[].message` "A pull request already exists for owner:branch."
    static func alreadyExists(_ object: [String: Any]) -> Bool {
        let errors = object["errors"] as? [[String: Any]] ?? []
        return errors.contains { ($0["message"] as? String)?.hasPrefix("A pull request already exists") == true }
            || (object["message"] as? String)?.contains("pull request already exists") == true
    }

    /// What a refusal means, in terms of the token, the repository or the URL.
    func explain(_ status: Int, _ object: [String: Any]) -> String {
        let said = (object["message"] as? String).map { ": \"\(cut($0))\"" } ?? ""
        let detail = (object["errors"] as? [[String: Any]])?.compactMap { $0["message"] as? String ?? $0["code"] as? String }
            .map(cut).joined(separator: "; ")
        switch status {
        case 401:
            return "\(apiURL) rejected the token in $\(tokenEnv) (401\(said)): it is wrong, expired or revoked; set $\(tokenEnv) to a valid token"
        case 403:
            return "the token in $\(tokenEnv) may not open pull requests in \(repo) (403\(said)): it needs write access to pull requests and contents of \(repo)"
        case 404:
            return "\(repo) was not found at \(apiURL) (404\(said)): check output.pr.repo, that output.pr.api_url is the API root (GitHub Enterprise: https://HOST/api/v3), and that the token in $\(tokenEnv) can see the repository"
        case 422:
            return "\(apiURL) refused the pull request (422\(said)\(detail.map { $0.isEmpty ? "" : "; " + $0 } ?? "")): check output.pr.base exists in \(repo)"
        default:
            return "\(apiURL) answered \(status)\(said)"
        }
    }

    /// A server's own words, shortened, and without the token should a server echo it.
    private func cut(_ text: String) -> String {
        let clean = token.isEmpty ? text : text.replacingOccurrences(of: token, with: "[REDACTED]")
        return clean.count > 300 ? String(clean.prefix(300)) + "…" : clean
    }

    static func queryEscaped(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
