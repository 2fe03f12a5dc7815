package dev.roundtrip

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.json.JSONObject
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

/**
 * OAuth sessions against the reference server: the endpoints come from discovery at the
 * server's base URL, and the tokens live in a Kotlin [TokenStore] that records its calls, which
 * also proves that the SDK goes through the app's store.
 */
class SessionTest : ServerTest() {
    private lateinit var store: RecordingTokenStore

    override fun config(baseUrl: String) = super.config(baseUrl).copy(
        oauth = OAuthSettings(clientId = "roundtrip-demo", issuer = baseUrl),
    )

    override fun createClient(baseUrl: String): Client {
        store = RecordingTokenStore()
        return Client(config(baseUrl), store)
    }

    @Test
    fun `password sign-in stores the tokens and authorizes requests`() = runBlocking<Unit> {
        client.signInWithPassword("alice", "wonderland")

        assertTrue(client.isSignedIn())
        assertEquals(1, store.saves.size)
        assertNotNull(store.saves.single().refreshToken)
        assertEquals("alice", client.me().getString("sub"))
    }

    @Test
    fun `a wrong password is an OAuth error and signs nobody in`() = runBlocking<Unit> {
        val error = expectThrows<RoundtripException.OAuth> {
            client.signInWithPassword("alice", "looking-glass")
        }

        assertEquals("invalid_grant", error.error)
        assertFalse(client.isSignedIn())
        assertTrue(store.saves.isEmpty())
    }

    @Test
    fun `an access token the server expired is refreshed and the request resent`() =
        runBlocking<Unit> {
            client.signInWithPassword("alice", "wonderland")
            val firstRefreshToken = store.current?.refreshToken
            server.expireAccessTokens()

            val me = client.me()

            assertEquals("alice", me.getString("sub"))
            assertEquals(1, server.oauthStats().getInt("refresh_grants"))
            // The server rotates refresh tokens; the store must hold the new one.
            assertEquals(2, store.saves.size)
            val refreshToken = store.current?.refreshToken
            assertNotNull(refreshToken)
            assertNotEquals(firstRefreshToken, refreshToken)
        }

    @Test
    fun `concurrent requests after expiry share one refresh`() = runBlocking<Unit> {
        client.signInWithPassword("alice", "wonderland")
        server.expireAccessTokens()

        val subjects = List(50) {
            async(Dispatchers.Default) { client.me().getString("sub") }
        }.awaitAll()

        assertEquals(List(50) { "alice" }, subjects)
        assertEquals(1, server.oauthStats().getInt("refresh_grants"))
        // At least the first request went out with the expired token and was resent.
        assertTrue(server.requestsTo("GET /me") > 50)
    }

    @Test
    fun `session events arrive as a flow in order`() = runBlocking<Unit> {
        // Unconfined runs the collector, and the listener registration it starts, on this
        // thread before `async` returns, so no event below can be missed.
        val events = async(Dispatchers.Unconfined) {
            client.sessionEvents().take(3).toList()
        }

        client.signInWithPassword("alice", "wonderland")
        server.expireAccessTokens()
        client.me()
        client.signOut()

        val received = withTimeout(5_000) { events.await() }
        assertEquals(
            listOf(SessionEvent.SIGNED_IN, SessionEvent.REFRESHED, SessionEvent.SIGNED_OUT),
            received,
        )
    }

    @Test
    fun `sign-out revokes and forgets the session`() = runBlocking<Unit> {
        client.signInWithPassword("alice", "wonderland")
        client.me()
        val requestsToMe = server.requestsTo("GET /me")

        client.signOut()

        assertFalse(client.isSignedIn())
        assertNull(store.current)
        assertTrue(store.clears > 0)
        assertEquals(1, server.oauthStats().getInt("revocations"))
        expectThrows<RoundtripException.SignInRequired> { client.me() }
        assertEquals(requestsToMe, server.requestsTo("GET /me"))
    }

    @Test
    fun `a restarted client resumes the stored session`() = runBlocking<Unit> {
        client.signInWithPassword("alice", "wonderland")
        client.close()

        Client(config(server.baseUrl), store).use { restarted ->
            assertTrue(restarted.isSignedIn())
            assertEquals("alice", restarted.me().getString("sub"))
        }

        // The stored tokens were used as they were: no new sign-in, no refresh.
        val oauth = server.oauthStats()
        assertEquals(1, oauth.getInt("token_requests"))
        assertEquals(0, oauth.getInt("refresh_grants"))
    }

    private suspend fun Client.me(): JSONObject = JSONObject(get("/me").text())

    private fun TestServer.oauthStats(): JSONObject = stats().getJSONObject("oauth")
}

/**
 * Keeps tokens in memory, as an app's Keystore-backed store would keep them on disk, and
 * records every save and clear. Called from the SDK's threads, hence the locking.
 */
internal class RecordingTokenStore : TokenStore {
    private val lock = Any()
    private var tokens: StoredTokens? = null
    private val saved = mutableListOf<StoredTokens>()
    private var cleared = 0

    /** The tokens held now. */
    val current: StoredTokens?
        get() = synchronized(lock) { tokens }

    /** Every [save] so far, oldest first. */
    val saves: List<StoredTokens>
        get() = synchronized(lock) { saved.toList() }

    /** How many times [clear] was called. */
    val clears: Int
        get() = synchronized(lock) { cleared }

    override fun load(): StoredTokens? = current

    override fun save(tokens: StoredTokens) {
        synchronized(lock) {
            saved += tokens
            this.tokens = tokens
        }
    }

    override fun clear() {
        synchronized(lock) {
            cleared += 1
            tokens = null
        }
    }
}
