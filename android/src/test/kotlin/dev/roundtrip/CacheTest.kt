package dev.roundtrip

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.nio.file.Files

/**
 * The HTTP cache from Kotlin: the server's per-resource counters prove when the network was
 * used. Each test gets a client with its own storage directory.
 */
class CacheTest : ServerTest() {
    override fun config(baseUrl: String) = super.config(baseUrl).copy(
        storageDir = Files.createTempDirectory("roundtrip-cache").toString(),
    )

    private fun path(name: String) = "/cache/resources/$name"

    @Test
    fun `a fresh response is served from the cache without the network`() = runBlocking<Unit> {
        server.defineResource("fresh", "v1", mapOf("cache-control" to "max-age=600"))

        val first = client.get(path("fresh"))
        val second = client.get(path("fresh"))

        assertFalse(first.cache.fromCache)
        assertTrue(second.cache.fromCache)
        assertFalse(second.cache.stale)
        assertEquals(0u, second.attempts)
        assertEquals("v1", second.text())
        assertEquals(1, server.resourceStats("fresh").getInt("requests"))
    }

    @Test
    fun `a stale response is revalidated and a 304 keeps the stored body`() = runBlocking<Unit> {
        server.defineResource("etag", "v1", mapOf("cache-control" to "max-age=0", "etag" to "\"v1\""))
        client.get(path("etag"))

        val revalidated = client.get(path("etag"))

        assertTrue(revalidated.cache.revalidated)
        assertEquals(200.toUShort(), revalidated.status)
        assertEquals("v1", revalidated.text())
        assertEquals(1, server.resourceStats("etag").getInt("not_modified"))
    }

    @Test
    fun `offline, a stale response is served and says so`() = runBlocking<Unit> {
        server.defineResource("offline", "v1", mapOf("cache-control" to "max-age=0"))
        client.get(path("offline"))
        client.setOnline(false)

        val served = client.get(path("offline"))
        val strictlyCached = client.send(
            Request(method = Method.GET, path = path("offline"), cachePolicy = CachePolicy.CACHE_ONLY),
        )

        assertTrue(served.cache.fromCache && served.cache.stale)
        assertEquals("v1", served.text())
        assertNotNull(strictlyCached.cache.ageSecs)
        assertEquals(1, server.resourceStats("offline").getInt("requests"))
        expectThrows<RoundtripException.NotCached> {
            client.send(Request(method = Method.GET, path = path("never"), cachePolicy = CachePolicy.CACHE_ONLY))
        }
    }
}

/** Sign-out wipes what was cached for the session, so the next user never sees it. */
class CachePartitionTest : ServerTest() {
    override fun config(baseUrl: String) = super.config(baseUrl).copy(
        storageDir = Files.createTempDirectory("roundtrip-partition").toString(),
        oauth = OAuthSettings(clientId = "roundtrip-demo", issuer = baseUrl),
    )

    override fun createClient(baseUrl: String): Client = Client(config(baseUrl), RecordingTokenStore())

    @Test
    fun `sign-out wipes the session's cached responses`() = runBlocking<Unit> {
        server.defineResource("mine", "alice's", mapOf("cache-control" to "private, max-age=600"))
        client.signInWithPassword("alice", "wonderland")
        client.get("/cache/resources/mine")
        assertTrue(client.get("/cache/resources/mine").cache.fromCache)

        client.signOut()
        client.signInWithPassword("bob", "builder")
        val bobs = client.get("/cache/resources/mine")

        assertFalse(bobs.cache.fromCache)
        assertEquals(2, server.resourceStats("mine").getInt("requests"))
    }
}
