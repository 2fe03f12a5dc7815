package dev.roundtrip

import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import java.util.UUID

class RetryTest : ServerTest() {
    @Test
    fun `GET is retried through transient 503s`() = runBlocking<Unit> {
        injectTodos503(count = 2)

        val response = client.get("/todos")

        assertEquals(200, response.status.toInt())
        assertEquals(3u, response.attempts)
        val stats = server.stats()
        assertEquals(3, stats.getJSONObject("by_route").getInt("GET /todos"))
        assertEquals(2, stats.getInt("faults_injected"))
    }

    @Test
    fun `GET gives up after the configured attempts with the last status`() = runBlocking<Unit> {
        injectTodos503(count = 5)

        val error = expectThrows<RoundtripException.Http> { client.get("/todos") }

        assertEquals(503, error.status.toInt())
        assertEquals(3, server.requestsTo("GET /todos"))
    }

    @Test
    fun `POST without an idempotency key is not retried`() = runBlocking<Unit> {
        injectTodos503(count = 1, method = "POST")

        val error = expectThrows<RoundtripException.Http> {
            client.post("/todos", """{"title":"once"}""")
        }

        assertEquals(503, error.status.toInt())
        val stats = server.stats()
        assertEquals(1, stats.getJSONObject("by_route").getInt("POST /todos"))
        assertEquals(0, stats.getInt("todos"))
    }

    @Test
    fun `POST with an idempotency key is retried and applied once`() = runBlocking<Unit> {
        injectTodos503(count = 1, method = "POST")

        val response = client.post(
            "/todos",
            """{"title":"once"}""",
            idempotencyKey = UUID.randomUUID().toString(),
        )

        assertEquals(201, response.status.toInt())
        assertEquals(2u, response.attempts)
        val stats = server.stats()
        assertEquals(2, stats.getJSONObject("by_route").getInt("POST /todos"))
        assertEquals(1, stats.getInt("todos"))
    }

    /** Makes the next [count] requests to /todos (of [method], if given) answer 503. */
    private fun injectTodos503(count: Int, method: String? = null) {
        val rule = JSONObject()
            .put("path", "/todos")
            .put("count", count)
            .put("kind", "status")
            .put("status", 503)
            .put("retry_after", 0)
        if (method != null) rule.put("method", method)

        server.injectFault(rule.toString())
    }
}
