// Idiomatic shortcuts over the generated `Client.send(Request)`.
//
// Every function here only builds a `Request` record and hands it to `send`:
// retries, timeouts, redaction and error mapping all happen in Rust, so the
// behaviour is the same from Kotlin, Swift and Rust.

package dev.roundtrip

private const val JSON_CONTENT_TYPE = "application/json"

/**
 * Sends `GET path` and returns the response.
 *
 * [path] is resolved against the client's base URL (or is an absolute URL). [query] parameters
 * are appended in iteration order and percent-encoded by the SDK, so pass values unencoded.
 *
 * GET is idempotent, so the SDK retries it after connection failures, timeouts and transient
 * statuses (408, 429, 500, 502, 503, 504), within the client's retry budget.
 *
 * ```kotlin
 * val todos = client.get("/todos", query = mapOf("done" to "false")).text()
 * ```
 *
 * @throws RoundtripException.Http when the server answers with a status of 400 or more;
 *   [RoundtripException.Offline], [RoundtripException.Timeout],
 *   [RoundtripException.Connection] and the other variants as documented on it.
 */
suspend fun Client.get(
    path: String,
    query: Map<String, String> = emptyMap(),
    headers: Map<String, String> = emptyMap(),
): Response = send(
    Request(
        method = Method.GET,
        path = path,
        query = query.toQueryParams(),
        headers = headers.toHeaders(),
    ),
)

/**
 * Sends `POST path` with [json] as an `application/json` body.
 *
 * POST is not idempotent: without an [idempotencyKey] the SDK never retries it, because the
 * server may already have applied it. With a key (for example a UUID made once per user action
 * and reused when that action is retried), the SDK sends `Idempotency-Key` and may retry; a
 * server that honours the key applies the write at most once.
 *
 * ```kotlin
 * val created = client.post("/todos", """{"title":"Milk"}""", idempotencyKey = actionId)
 * val location = created.header("Location")
 * ```
 */
suspend fun Client.post(
    path: String,
    json: String,
    idempotencyKey: String? = null,
    headers: Map<String, String> = emptyMap(),
): Response = sendJson(Method.POST, path, json, idempotencyKey, headers)

/**
 * Sends `PUT path` with [json] as an `application/json` body, replacing the resource.
 *
 * PUT is idempotent, so the SDK retries it like a GET; an [idempotencyKey] additionally lets a
 * server detect a replay.
 */
suspend fun Client.put(
    path: String,
    json: String,
    idempotencyKey: String? = null,
    headers: Map<String, String> = emptyMap(),
): Response = sendJson(Method.PUT, path, json, idempotencyKey, headers)

/**
 * Sends `PATCH path` with [json] as an `application/json` body.
 *
 * Like [post], a PATCH is retried only when it carries an [idempotencyKey].
 */
suspend fun Client.patch(
    path: String,
    json: String,
    idempotencyKey: String? = null,
    headers: Map<String, String> = emptyMap(),
): Response = sendJson(Method.PATCH, path, json, idempotencyKey, headers)

/**
 * Sends `DELETE path` without a body.
 *
 * DELETE is idempotent, so the SDK retries it like a GET.
 */
suspend fun Client.delete(
    path: String,
    idempotencyKey: String? = null,
    headers: Map<String, String> = emptyMap(),
): Response = send(
    Request(
        method = Method.DELETE,
        path = path,
        headers = headers.toHeaders(),
        idempotencyKey = idempotencyKey,
    ),
)

/**
 * The body decoded as UTF-8. Malformed sequences become U+FFFD rather than failing.
 */
fun Response.text(): String = body.toString(Charsets.UTF_8)

/**
 * The value of the first header called [name], compared case-insensitively as HTTP requires,
 * or `null` when the response has none.
 */
fun Response.header(name: String): String? =
    headers.firstOrNull { it.name.equals(name, ignoreCase = true) }?.value

/** Whether the status is in the 2xx range. */
val Response.isSuccessful: Boolean
    get() = status.toInt() in 200..299

private suspend fun Client.sendJson(
    method: Method,
    path: String,
    json: String,
    idempotencyKey: String?,
    headers: Map<String, String>,
): Response {
    val contentType = if (headers.keys.any { it.equals("Content-Type", ignoreCase = true) }) {
        emptyList()
    } else {
        listOf(Header(name = "Content-Type", value = JSON_CONTENT_TYPE))
    }

    return send(
        Request(
            method = method,
            path = path,
            headers = contentType + headers.toHeaders(),
            body = json.toByteArray(Charsets.UTF_8),
            idempotencyKey = idempotencyKey,
        ),
    )
}

private fun Map<String, String>.toHeaders(): List<Header> =
    map { (name, value) -> Header(name = name, value = value) }

private fun Map<String, String>.toQueryParams(): List<QueryParam> =
    map { (name, value) -> QueryParam(name = name, value = value) }
