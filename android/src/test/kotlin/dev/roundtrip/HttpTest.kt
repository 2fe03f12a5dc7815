package dev.roundtrip

import kotlinx.coroutines.runBlocking
import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.util.UUID

class HttpTest : ServerTest() {
    @Test
    fun `GET health decodes the JSON status`() = runBlocking<Unit> {
        val response = client.get("/health")

        assertEquals(200, response.status.toInt())
        assertTrue(response.isSuccessful)
        assertEquals(1u, response.attempts)
        assertEquals("ok", JSONObject(response.text()).getString("status"))
        assertTrue(response.header("content-type")!!.startsWith("application/json"))
    }

    @Test
    fun `GET todos lists the created todos in id order`() = runBlocking<Unit> {
        client.post("/todos", """{"title":"first"}""")
        client.post("/todos", """{"title":"second","done":true}""")

        val todos = JSONArray(client.get("/todos").text())

        assertEquals(2, todos.length())
        val first = todos.getJSONObject(0)
        val second = todos.getJSONObject(1)
        assertEquals("first", first.getString("title"))
        assertEquals(false, first.getBoolean("done"))
        assertEquals("second", second.getString("title"))
        assertEquals(true, second.getBoolean("done"))
        assertTrue(first.getLong("id") < second.getLong("id"))
    }

    @Test
    fun `query parameters and headers reach the server`() = runBlocking<Unit> {
        val response = client.get(
            "/echo",
            query = mapOf("q" to "a b&c", "page" to "2"),
            headers = mapOf("X-Trace" to "kotlin"),
        )

        val echo = JSONObject(response.text())
        assertEquals("GET", echo.getString("method"))
        assertEquals("q=a+b%26c&page=2", echo.getString("query").replace("%20", "+"))
        assertEquals("kotlin", echo.getJSONObject("headers").getString("x-trace"))
    }

    @Test
    fun `POST creates a todo and a replay with the same key returns the stored response`() =
        runBlocking<Unit> {
            val key = UUID.randomUUID().toString()
            val body = """{"title":"buy milk"}"""

            val created = client.post("/todos", body, idempotencyKey = key)
            val replayed = client.post("/todos", body, idempotencyKey = key)

            assertEquals(201, created.status.toInt())
            val id = JSONObject(created.text()).getLong("id")
            assertEquals("/todos/$id", created.header("Location"))
            assertNull(created.header("Idempotency-Replayed"))

            assertEquals(201, replayed.status.toInt())
            assertEquals(id, JSONObject(replayed.text()).getLong("id"))
            assertEquals("true", replayed.header("idempotency-replayed"))

            val stats = server.stats()
            assertEquals(1, stats.getInt("todos"))
            assertEquals(2, stats.getJSONObject("by_route").getInt("POST /todos"))
        }

    @Test
    fun `PUT, PATCH and DELETE change a todo`() = runBlocking<Unit> {
        val id = JSONObject(client.post("/todos", """{"title":"draft"}""").text()).getLong("id")

        val put = client.put("/todos/$id", """{"title":"final","done":false}""")
        val patch = client.patch("/todos/$id", """{"done":true}""")
        val deleted = client.delete("/todos/$id")

        assertEquals("final", JSONObject(put.text()).getString("title"))
        val patched = JSONObject(patch.text())
        assertEquals("final", patched.getString("title"))
        assertEquals(true, patched.getBoolean("done"))
        assertEquals(204, deleted.status.toInt())
        assertEquals(0, server.stats().getInt("todos"))
    }

    @Test
    fun `GET of a missing todo throws Http 404 with the problem details`() = runBlocking<Unit> {
        val error = expectThrows<RoundtripException.Http> { client.get("/todos/999") }

        assertEquals(404, error.status.toInt())
        val problem = requireNotNull(error.problem) { "the 404 carried no problem details" }
        assertEquals("Not Found", problem.title)
        assertEquals(404, problem.status?.toInt())
        // A 404 is permanent: the SDK must not have retried it.
        assertEquals(1, server.requestsTo("GET /todos/999"))
    }

    @Test
    fun `an invalid body throws Http 422 carrying the validation errors`() = runBlocking<Unit> {
        val error = expectThrows<RoundtripException.Http> {
            client.post("/todos", """{"title":""}""")
        }

        assertEquals(422, error.status.toInt())
        val problem = requireNotNull(error.problem) { "the 422 carried no problem details" }
        assertTrue(problem.typeUri.endsWith("/problems/validation"), problem.typeUri)
        val errors = JSONObject(problem.extensionsJson).getJSONArray("errors")
        assertEquals("title", errors.getJSONObject(0).getString("field"))
    }
}
