package dev.roundtrip

import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ConnectivityTest : ServerTest() {
    @Test
    fun `offline fails fast without touching the network`() = runBlocking<Unit> {
        client.setOnline(false)

        // The bound only keeps a regression from hanging the build; offline must not wait at all.
        withTimeout(5_000) {
            expectThrows<RoundtripException.Offline> { client.get("/health") }
        }
        assertFalse(client.isOnline())
        assertEquals(0, server.stats().getInt("total"))

        client.setOnline(true)
        val response = client.get("/health")

        assertTrue(client.isOnline())
        assertEquals(200, response.status.toInt())
        assertEquals(1, server.stats().getInt("total"))
    }
}
