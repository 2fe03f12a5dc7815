package dev.roundtrip

import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.util.concurrent.ConcurrentLinkedQueue

class LoggingTest : ServerTest() {
    /** Keeps every record; Rust calls it from its own threads. */
    private class CollectingLogger : Logger {
        val records = ConcurrentLinkedQueue<LogRecord>()

        override fun log(record: LogRecord) {
            records.add(record)
        }
    }

    @AfterEach
    fun removeLogger() {
        clearLogger()
    }

    @Test
    fun `records reach a Kotlin logger without the request's secrets`() = runBlocking<Unit> {
        val token = "kotlin-secret-token"
        val apiKey = "kotlin-secret-query"
        val logger = CollectingLogger()
        setLogger(logger, LogLevel.DEBUG)

        val response = client.get(
            "/echo",
            query = mapOf("api_key" to apiKey),
            headers = mapOf("Authorization" to "Bearer $token"),
        )

        // The secrets did travel, so a leak would have had something to leak.
        val echo = JSONObject(response.text())
        assertEquals("Bearer $token", echo.getJSONObject("headers").getString("authorization"))
        assertTrue(echo.getString("query").contains(apiKey))

        val records = logger.records.toList()
        assertTrue(records.isNotEmpty(), "no log record arrived")
        assertTrue(
            records.any { it.message.contains("/echo") },
            "no record mentions the request: $records",
        )
        assertTrue(records.none { it.level == LogLevel.TRACE }, "TRACE passed a DEBUG filter")
        for (record in records) {
            val text = "${record.target} ${record.message}"
            assertTrue(!text.contains(token) && !text.contains(apiKey), "secret in log: $record")
        }
    }

    @Test
    fun `clearLogger stops delivery`() = runBlocking<Unit> {
        val logger = CollectingLogger()
        setLogger(logger, LogLevel.TRACE)
        client.get("/health")
        assertTrue(logger.records.isNotEmpty(), "no log record arrived")

        clearLogger()
        logger.records.clear()
        client.get("/health")

        assertTrue(logger.records.isEmpty(), "records after clearLogger: ${logger.records}")
    }
}
