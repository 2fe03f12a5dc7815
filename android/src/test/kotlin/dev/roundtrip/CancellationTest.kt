package dev.roundtrip

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import java.util.concurrent.atomic.AtomicBoolean

class CancellationTest : ServerTest() {
    @Test
    fun `cancelling the coroutine drops the request in flight`() = runBlocking<Unit> {
        val returned = AtomicBoolean(false)
        // Off the runBlocking thread, which the blocking stats polling below occupies.
        val job = launch(Dispatchers.Default) {
            client.get("/slow", query = mapOf("ms" to "5000"))
            returned.set(true)
        }
        val started = server.awaitStats { it.getJSONObject("slow").getInt("started") == 1 }
        assertEquals(1, started.getJSONObject("slow").getInt("started"))
        delay(300)

        job.cancelAndJoin()

        assertTrue(job.isCancelled)
        assertFalse(returned.get())
        // The server sees the connection go away long before the 5 s body would have ended.
        val slow = server.awaitStats { it.getJSONObject("slow").getInt("aborted") == 1 }
            .getJSONObject("slow")
        assertEquals(1, slow.getInt("aborted"))
        assertEquals(0, slow.getInt("completed"))
    }

    @Test
    fun `a cancellation token stops the request it was passed to`() = runBlocking<Unit> {
        // The mechanism the Swift helpers use, since Swift cannot drop the Rust future.
        val token = CancellationToken()
        val request = Request(method = Method.GET, path = "/slow", query = listOf(QueryParam("ms", "5000")))
        val call = async(Dispatchers.Default) {
            assertThrows<RoundtripException.Cancelled> { client.send(request, token) }
        }
        server.awaitStats { it.getJSONObject("slow").getInt("started") == 1 }

        token.cancel()

        call.await()
        assertTrue(token.isCancelled())
        val slow = server.awaitStats { it.getJSONObject("slow").getInt("aborted") == 1 }
            .getJSONObject("slow")
        assertEquals(0, slow.getInt("completed"))
    }
}
