package dev.roundtrip

import org.json.JSONArray
import org.json.JSONObject
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import java.util.concurrent.CompletableFuture
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread

/**
 * The reference server (`examples/server`) running as a child process on loopback.
 *
 * The binary comes from the `roundtrip.server.bin` system property, which the Maven build sets.
 * The server is started with `--exit-on-stdin-eof`, so it also goes away when the test JVM dies
 * without calling [close]. Its log (stderr) goes to `target/server-logs/<name>.log`.
 *
 * Control calls go through `java.net.http`, not through the SDK under test, so that a bug in
 * the SDK cannot hide itself by also breaking the checks.
 */
class TestServer private constructor(
    private val process: Process,
    /** `http://127.0.0.1:PORT`, without a trailing slash. */
    val baseUrl: String,
) : AutoCloseable {
    private val http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build()

    /**
     * `POST /_control/reset`: deletes todos, devices, idempotency records, OAuth state and
     * faults; zeroes stats.
     */
    fun reset() {
        control("POST", "/_control/reset", body = null, expect = 204)
    }

    /** `POST /_control/faults` with [ruleJson], for example `{"path":"/todos","count":1}`. */
    fun injectFault(ruleJson: String) {
        control("POST", "/_control/faults", body = ruleJson, expect = 204)
    }

    /** `POST /_control/realtime/ACTION` (`drop`, `silence`, `close`) on every open socket. */
    fun realtime(action: String, bodyJson: String = "{}") {
        control("POST", "/_control/realtime/$action", body = bodyJson, expect = 200)
    }

    /** `POST /_control/realtime/publish` with [dataJson] as the event's data; returns its id. */
    fun publish(dataJson: String): Long =
        JSONObject(control("POST", "/_control/realtime/publish", """{"data":$dataJson}""", 200))
            .getLong("id")

    /** `POST /_control/oauth/expire-access-tokens`: every access token issued so far expires. */
    fun expireAccessTokens() {
        control("POST", "/_control/oauth/expire-access-tokens", body = null, expect = 204)
    }

    /**
     * `PUT /_control/cache/resources/NAME`: defines a cacheable resource served at
     * `/cache/resources/NAME` with [body] and the response [headers] given.
     */
    fun defineResource(name: String, body: String, headers: Map<String, String>) {
        val definition = JSONObject()
            .put("body", body)
            .put("content_type", "text/plain")
            .put("headers", JSONObject(headers))
        control("PUT", "/_control/cache/resources/$name", body = definition.toString(), expect = 204)
    }

    /** The counters of the cacheable resource [name]: requests, conditional, not_modified, full. */
    fun resourceStats(name: String): JSONObject =
        stats().optJSONObject("cache")?.optJSONObject(name) ?: JSONObject()

    /** `GET /_control/stats`, parsed. */
    fun stats(): JSONObject =
        JSONObject(control("GET", "/_control/stats", body = null, expect = 200))

    /** How many requests `METHOD /path` the server has received since the last reset. */
    fun requestsTo(route: String): Int = stats().getJSONObject("by_route").optInt(route, 0)

    /**
     * Polls the stats until [condition] holds or [timeout] passes, and returns the last stats
     * seen either way, so that the caller's assertion reports what the server really counted.
     */
    fun awaitStats(
        timeout: Duration = Duration.ofSeconds(5),
        condition: (JSONObject) -> Boolean,
    ): JSONObject {
        val deadline = System.nanoTime() + timeout.toNanos()
        var stats = stats()
        while (!condition(stats) && System.nanoTime() < deadline) {
            Thread.sleep(50)
            stats = stats()
        }
        return stats
    }

    /**
     * An access token for [username] from the password grant, for a client with fixed bearer
     * credentials (the bindings do not export sessions yet).
     */
    fun accessToken(username: String, password: String): String {
        val form = "grant_type=password&client_id=roundtrip-demo" +
            "&username=$username&password=$password"
        val request = HttpRequest.newBuilder(URI.create("$baseUrl/oauth/token"))
            .timeout(Duration.ofSeconds(10))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .POST(HttpRequest.BodyPublishers.ofString(form))
            .build()

        val response = http.send(request, HttpResponse.BodyHandlers.ofString())

        check(response.statusCode() == 200) { "password grant failed: ${response.body()}" }
        return JSONObject(response.body()).getString("access_token")
    }

    /** `GET /_control/devices`: every push registration, tokens included, oldest first. */
    fun devices(): JSONArray =
        JSONArray(control("GET", "/_control/devices", body = null, expect = 200))

    /** `DELETE /_control/devices/{id}`: drops a registration, as a push provider would. */
    fun dropDevice(installationId: String) {
        control("DELETE", "/_control/devices/$installationId", body = null, expect = 204)
    }

    override fun close() {
        // EOF on stdin asks the server to exit; signals are the fallback.
        runCatching { process.outputStream.close() }
        if (!process.waitFor(5, TimeUnit.SECONDS)) {
            process.destroy()
            if (!process.waitFor(5, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor()
            }
        }
    }

    private fun control(method: String, path: String, body: String?, expect: Int): String {
        val publisher = body?.let { HttpRequest.BodyPublishers.ofString(it) }
            ?: HttpRequest.BodyPublishers.noBody()
        val request = HttpRequest.newBuilder(URI.create(baseUrl + path))
            .timeout(Duration.ofSeconds(10))
            .header("Content-Type", "application/json")
            .method(method, publisher)
            .build()

        val response = http.send(request, HttpResponse.BodyHandlers.ofString())

        check(response.statusCode() == expect) {
            "$method $path answered ${response.statusCode()}: ${response.body()}"
        }
        return response.body()
    }

    companion object {
        private val LISTENING = Regex("""listening on (http://\S+)""")

        /** Starts a server and waits for its `listening on ...` line; [name] names the log. */
        fun start(name: String): TestServer {
            val binary = File(
                System.getProperty("roundtrip.server.bin")
                    ?: error("system property roundtrip.server.bin is not set"),
            )
            check(binary.canExecute()) {
                "reference server not found at $binary: run `cargo build -p roundtrip-server`"
            }
            val logs = File("target/server-logs").apply { mkdirs() }

            val process = ProcessBuilder(binary.path, "--port", "0", "--exit-on-stdin-eof")
                .redirectError(ProcessBuilder.Redirect.to(File(logs, "$name.log")))
                .start()

            // Read stdout on a thread of its own: it gives a timeout on the first line, and
            // keeps draining the pipe afterwards so the server can never block on it.
            val firstLine = CompletableFuture<String?>()
            thread(isDaemon = true, name = "roundtrip-server-stdout") {
                process.inputStream.bufferedReader().use { reader ->
                    firstLine.complete(reader.readLine())
                    while (reader.readLine() != null) {
                        // discard
                    }
                }
            }

            val line = try {
                firstLine.get(30, TimeUnit.SECONDS)
            } catch (e: Exception) {
                process.destroyForcibly()
                throw IllegalStateException("reference server did not report its address", e)
            }
            val baseUrl = line?.let { LISTENING.find(it)?.groupValues?.get(1) }
            if (baseUrl == null) {
                process.destroyForcibly()
                error("unexpected first line from the reference server: $line")
            }
            return TestServer(process, baseUrl.trimEnd('/'))
        }
    }
}
