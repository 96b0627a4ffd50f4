import CCurl
import Foundation
import RobitExec
import RobitSync
import Synchronization

/// One HTTP POST (or GET) over libcurl, run on a blocking thread (`BlockingThreads`, never the cooperative
/// pool) and bridged to async. The body is handed to the consumer as it arrives; the whole body is
/// also kept (up to the size cap) for the audit record. Proxies come from the standard environment variables (libcurl's
/// default). Task cancellation aborts the transfer within about 50 ms.
enum HTTPTransfer {
    fileprivate static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
    }()

    static func post<Consumer: HTTPStreamConsumer>(_ request: HTTPRequest, limits: HTTPLimits, connection: HTTPConnectionCache,
                                                   consumer: Consumer) async -> Result<HTTPExchange<Consumer>, AttemptError> {
        let state = TransferState(request: request, limits: limits, connection: connection, consumer: consumer)
        return await withTaskCancellationHandler {
            await BlockingThreads.run { state.run() }
        } onCancel: {
            state.cancelled.store(true, ordering: .relaxed)
        }
    }
}

/// Why the transfer was stopped from robit's side.
private enum AbortReason {
    case tooLarge
    case consumer(AttemptError)
}

/// Everything one transfer touches. Only the transfer thread reads or writes the mutable parts
/// (the callbacks run on it too); the async caller sees them again only after the thread resumed
/// its continuation, which orders the accesses. `cancelled` is the one field shared live.
private final class TransferState<Consumer: HTTPStreamConsumer>: @unchecked Sendable {
    let request: HTTPRequest
    let limits: HTTPLimits
    let connection: HTTPConnectionCache
    let cancelled = Atomic<Bool>(false)
    var consumer: Consumer
    var head = HTTPResponseHead()
    var headComplete = false
    var body: [UInt8] = []
    var abort: AbortReason?
    var lastActivity = ContinuousClock.now

    init(request: HTTPRequest, limits: HTTPLimits, connection: HTTPConnectionCache, consumer: Consumer) {
        self.request = request
        self.limits = limits
        self.connection = connection
        self.consumer = consumer
    }

    func run() -> Result<HTTPExchange<Consumer>, AttemptError> {
        // libcurl reads the body from robit's own copy (no second copy of a body that grows with the
        // conversation): the pointer is valid for the whole transfer, which ends inside this closure.
        var body = request.body
        return body.withUTF8 { perform(requestBody: $0) }
    }

    private func perform(requestBody: UnsafeBufferPointer<UInt8>) -> Result<HTTPExchange<Consumer>, AttemptError> {
        // Declared before the handle so that they are released after it.
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        var headerList: UnsafeMutablePointer<curl_slist>?
        for line in request.headers + ["Expect:"] {
            headerList = curl_slist_append(headerList, line)
        }
        defer { curl_slist_free_all(headerList) }
        guard let handles = connection.take() else {
            return .failure(AttemptError(.network, "libcurl could not create its handles", retryable: false))
        }
        let easy = handles.easy, multi = handles.multi
        // Runs before the buffers above are released: the handle keeps no pointer into them.
        defer { connection.giveBack(handles) }

        let me = Unmanaged.passUnretained(self).toOpaque()
        robit_curl_setopt_string(easy, CURLOPT_URL, request.url)
        robit_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        robit_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        robit_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        robit_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(max(1, limits.connectTimeout.wholeMilliseconds)))
        robit_curl_setopt_string(easy, CURLOPT_USERAGENT, "robit")
        robit_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headerList)
        robit_curl_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        if request.method == "GET" {
            robit_curl_setopt_long(easy, CURLOPT_HTTPGET, 1)
        } else {
            robit_curl_setopt_long(easy, CURLOPT_POST, 1)
            robit_curl_setopt_size(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(requestBody.count))
            let bodyStart = requestBody.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(errorBuffer)
            robit_curl_setopt_pointer(easy, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bodyStart))
        }
        robit_curl_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, transferWriteCallback)
        robit_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        robit_curl_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION, transferHeaderCallback)
        robit_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, me)

        curl_multi_add_handle(multi, easy)

        let start = ContinuousClock.now
        lastActivity = start
        var result: CURLcode?
        while result == nil {
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                if message.pointee.msg == CURLMSG_DONE { result = robit_curl_msg_result(message) }
            }
            if result != nil || running == 0 { break }
            let now = ContinuousClock.now
            if cancelled.load(ordering: .relaxed) {
                return .failure(AttemptError(.network, "the model call was cancelled", retryable: false))
            }
            if now - start > limits.totalTimeout {
                return .failure(AttemptError(.timeout, "no complete answer from \(hostDescription) within \(limits.totalTimeout.shortDescription) (the overall limit)", retryable: true))
            }
            if now - lastActivity > limits.idleTimeout {
                let phase = headComplete ? "mid-stream" : "before the response began"
                return .failure(AttemptError(.timeout, "\(hostDescription) sent nothing for \(limits.idleTimeout.shortDescription) \(phase) (idle timeout)", retryable: true))
            }
            curl_multi_poll(multi, nil, 0, 50, nil)
        }
        if let abort {
            switch abort {
            case .tooLarge:
                return .failure(AttemptError(.tooLarge, "the response from \(hostDescription) exceeded \(limits.maxResponseBytes) bytes; the transfer was aborted", retryable: false))
            case .consumer(let error):
                return .failure(error)
            }
        }
        let code = result ?? CURLE_OK
        if code != CURLE_OK {
            return .failure(curlFailure(code, detail: String(cString: errorBuffer)))
        }
        var status = 0
        robit_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        head.status = status
        return .success(HTTPExchange(head: head, body: body, consumer: consumer))
    }

    private var hostDescription: String {
        URLComponents(string: request.url).flatMap { components in
            components.host.map { host in components.port.map { "\(host):\($0)" } ?? host }
        } ?? "the provider"
    }

    private func curlFailure(_ code: CURLcode, detail: String) -> AttemptError {
        let reason = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return AttemptError(.timeout, "timed out talking to \(hostDescription): \(reason)", retryable: true)
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return AttemptError(.network, "could not connect to \(hostDescription): \(reason) (is the URL right and the server reachable?)", retryable: true)
        case CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            return AttemptError(.network, "the connection to \(hostDescription) broke: \(reason)", retryable: true)
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT:
            return AttemptError(.network, "cannot talk to \(hostDescription): \(reason)", retryable: false)
        default:
            return AttemptError(.network, "request to \(hostDescription) failed: \(reason)", retryable: true)
        }
    }

    /// Called by libcurl for each header line, of every response (1xx included).
    func header(_ bytes: UnsafeRawBufferPointer) {
        lastActivity = ContinuousClock.now
        let line = bytes.trimmingJSONWhitespace
        if line.starts(with: "HTTP/".utf8) {
            head = HTTPResponseHead()
            headComplete = false
            let parts = line.split(separator: UInt8(ascii: " "), maxSplits: 2)
            if parts.count >= 2, let status = Int(String(decoding: parts[1], as: UTF8.self)) { head.status = status }
        } else if line.isEmpty {
            headComplete = true
        } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
            let name = String(decoding: line[..<colon].trimmingJSONWhitespace, as: UTF8.self)
            let value = String(decoding: line[(colon + 1)...].trimmingJSONWhitespace, as: UTF8.self)
            head.headers.append((name, value))
        }
    }

    /// Called by libcurl for each piece of body. Returns false to abort the transfer.
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        lastActivity = ContinuousClock.now
        if body.count + bytes.count > limits.maxResponseBytes {
            abort = .tooLarge
            return false
        }
        body.append(contentsOf: bytes)
        guard head.isSuccess else { return true }
        do {
            try consumer.consume(bytes)
        } catch {
            abort = .consumer(error)
            return false
        }
        return true
    }
}

private func transferState(_ userdata: UnsafeMutableRawPointer?) -> any TransferCallbacks {
    Unmanaged<AnyObject>.fromOpaque(userdata!).takeUnretainedValue() as! any TransferCallbacks
}

/// The callbacks of a `TransferState`, whatever its consumer type (C callbacks cannot be generic).
private protocol TransferCallbacks: AnyObject {
    func header(_ bytes: UnsafeRawBufferPointer)
    func write(_ bytes: UnsafeRawBufferPointer) -> Bool
}

extension TransferState: TransferCallbacks {}

private let transferWriteCallback: robit_curl_data_callback = { pointer, size, count, userdata in
    let length = size * count
    let state = transferState(userdata)
    let keep = state.write(UnsafeRawBufferPointer(start: pointer, count: length))
    return keep ? length : 0
}

private let transferHeaderCallback: robit_curl_data_callback = { pointer, size, count, userdata in
    let length = size * count
    transferState(userdata).header(UnsafeRawBufferPointer(start: pointer, count: length))
    return length
}

/// libcurl's handles, kept between the calls of one provider. The multi handle holds the connection
/// cache (and the TLS session cache), so a call after the first reuses the open connection instead of
/// a new TCP and TLS handshake; libcurl opens a new one by itself when the server closed it meanwhile.
/// One transfer uses the handles at a time; a concurrent one gets handles of its own.
final class HTTPConnectionCache: Sendable {
    struct Handles: @unchecked Sendable {
        let easy: UnsafeMutableRawPointer
        let multi: UnsafeMutableRawPointer
    }

    private let idle = Locked<Handles?>(nil)

    init() {}

    /// Handles for one transfer: the idle ones, or new ones.
    func take() -> Handles? {
        if let handles = idle.withLock({ slot -> Handles? in defer { slot = nil }; return slot }) { return handles }
        _ = HTTPTransfer.globalInit
        guard let easy = curl_easy_init() else { return nil }
        guard let multi = curl_multi_init() else {
            curl_easy_cleanup(easy)
            return nil
        }
        return Handles(easy: easy, multi: multi)
    }

    /// Back after a transfer, finished or not: the easy handle leaves the multi handle (libcurl closes a
    /// connection that is mid-transfer) and forgets every option, so it points at nothing of the transfer.
    func giveBack(_ handles: Handles) {
        curl_multi_remove_handle(handles.multi, handles.easy)
        curl_easy_reset(handles.easy)
        let extra = idle.withLock { slot -> Handles? in
            if slot == nil { slot = handles; return nil }
            return handles
        }
        if let extra { Self.release(extra) }
    }

    private static func release(_ handles: Handles) {
        curl_easy_cleanup(handles.easy)
        curl_multi_cleanup(handles.multi)
    }

    deinit {
        if let handles = idle.withLock({ $0 }) { Self.release(handles) }
    }
}
