// Swift-style shortcuts over the generated `Client.send(request:cancellation:)`.
//
// Each function only builds a `Request` value and hands it to `send`: retries,
// timeouts, redaction and error mapping all happen in Rust, so the behaviour is
// the same from Swift, Kotlin and Rust.

import Foundation

extension Client {
    /// Sends `request` and returns its response; cancelling the calling task cancels the request
    /// in Rust and throws `RoundtripError.Cancelled`.
    ///
    /// Prefer this (or the shortcuts below) to the generated `send(request:cancellation:)`:
    /// UniFFI's async glue cannot see task cancellation by itself, so this passes a
    /// `CancellationToken` and cancels it from the task's cancellation handler.
    public func perform(_ request: Request) async throws -> Response {
        let token = CancellationToken()
        return try await withTaskCancellationHandler {
            try await send(request: request, cancellation: token)
        } onCancel: {
            token.cancel()
        }
    }

    /// Sends `GET path` and returns the response.
    ///
    /// `path` is resolved against the client's base URL (or is an absolute URL). `query`
    /// parameters are appended in the order written and percent-encoded by the SDK, so pass
    /// values unencoded.
    ///
    /// GET is idempotent, so the SDK retries it after connection failures, timeouts and
    /// transient statuses (408, 429, 500, 502, 503, 504), within the client's retry budget.
    ///
    /// ```swift
    /// let todos = try await client.get("/todos", query: ["done": "false"]).text
    /// ```
    ///
    /// - Throws: `RoundtripError` — a status of 400 or more arrives as its `Http` case, with
    ///   the server's problem details when it sent any.
    public func get(
        _ path: String,
        query: KeyValuePairs<String, String> = [:],
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await perform(
            Request(
                method: .get,
                path: path,
                query: query.map { QueryParam(name: $0.key, value: $0.value) },
                headers: headers.map { Header(name: $0.key, value: $0.value) }
            )
        )
    }

    /// Sends `POST path` with `json` as an `application/json` body.
    ///
    /// POST is not idempotent: without an `idempotencyKey` the SDK never retries it, because
    /// the server may already have applied it. With a key (for example a UUID made once per
    /// user action and reused when that action is retried), the SDK sends `Idempotency-Key`
    /// and may retry; a server that honours the key applies the write at most once.
    ///
    /// ```swift
    /// let body = try JSONEncoder().encode(NewTodo(title: "Milk"))
    /// let created = try await client.post("/todos", json: body, idempotencyKey: actionID)
    /// let location = created.header("Location")
    /// ```
    public func post(
        _ path: String,
        json: Data,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await sendJSON(.post, path, json, idempotencyKey, headers)
    }

    /// Sends `POST path` with the UTF-8 bytes of `json` as an `application/json` body.
    public func post(
        _ path: String,
        json: String,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await sendJSON(.post, path, Data(json.utf8), idempotencyKey, headers)
    }

    /// Sends `PUT path` with `json` as an `application/json` body, replacing the resource.
    ///
    /// PUT is idempotent, so the SDK retries it like a GET; an `idempotencyKey` additionally
    /// lets a server detect a replay.
    public func put(
        _ path: String,
        json: Data,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await sendJSON(.put, path, json, idempotencyKey, headers)
    }

    /// Sends `PUT path` with the UTF-8 bytes of `json` as an `application/json` body.
    public func put(
        _ path: String,
        json: String,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await sendJSON(.put, path, Data(json.utf8), idempotencyKey, headers)
    }

    /// Sends `PATCH path` with `json` as an `application/json` body.
    ///
    /// Like `post`, a PATCH is retried only when it carries an `idempotencyKey`.
    public func patch(
        _ path: String,
        json: Data,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await sendJSON(.patch, path, json, idempotencyKey, headers)
    }

    /// Sends `PATCH path` with the UTF-8 bytes of `json` as an `application/json` body.
    public func patch(
        _ path: String,
        json: String,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await sendJSON(.patch, path, Data(json.utf8), idempotencyKey, headers)
    }

    /// Sends `DELETE path` without a body.
    ///
    /// DELETE is idempotent, so the SDK retries it like a GET.
    public func delete(
        _ path: String,
        idempotencyKey: String? = nil,
        headers: KeyValuePairs<String, String> = [:]
    ) async throws -> Response {
        try await perform(
            Request(
                method: .delete,
                path: path,
                headers: headers.map { Header(name: $0.key, value: $0.value) },
                idempotencyKey: idempotencyKey
            )
        )
    }

    private func sendJSON(
        _ method: Method,
        _ path: String,
        _ json: Data,
        _ idempotencyKey: String?,
        _ headers: KeyValuePairs<String, String>
    ) async throws -> Response {
        var allHeaders = headers.map { Header(name: $0.key, value: $0.value) }
        if !allHeaders.contains(where: { $0.name.lowercased() == "content-type" }) {
            allHeaders.insert(Header(name: "Content-Type", value: "application/json"), at: 0)
        }

        return try await perform(
            Request(
                method: method,
                path: path,
                headers: allHeaders,
                body: json,
                idempotencyKey: idempotencyKey
            )
        )
    }
}

extension Response {
    /// The body decoded as UTF-8. Malformed sequences become U+FFFD rather than failing.
    public var text: String {
        String(decoding: body, as: UTF8.self)
    }

    /// Whether the status is in the 2xx range.
    public var isSuccessful: Bool {
        (200..<300).contains(status)
    }

    /// The value of the first header called `name`, compared case-insensitively as HTTP
    /// requires, or `nil` when the response has none.
    public func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }
}
