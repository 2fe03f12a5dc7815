package dev.roundtrip

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.launchIn
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import java.util.concurrent.atomic.AtomicReference
import kotlinx.coroutines.channels.Channel as Queue

/**
 * Realtime channels from Kotlin against the reference server's `/ws`: every behaviour of a
 * channel that must survive a real network, through the generated bindings and the
 * `Channel.events()` Flow. Intervals are milliseconds; every wait is bounded.
 */
class RealtimeTest : ServerTest() {
    private lateinit var scope: CoroutineScope
    private lateinit var sessionClient: Client

    @BeforeEach
    fun signIn() = runBlocking {
        scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
        sessionClient = Client(
            config(server.baseUrl).copy(
                oauth = OAuthSettings(clientId = "roundtrip-demo", issuer = server.baseUrl),
            ),
            MemoryTokenStore(),
        )
        sessionClient.signInWithPassword("alice", "wonderland")
    }

    @AfterEach
    fun closeSession() {
        scope.cancel()
        sessionClient.close()
    }

    private fun open(config: ChannelConfig = fast()): Pair<Channel, Events> {
        val channel = sessionClient.channel(config)
        return channel to Events(channel, scope)
    }

    private fun fast(
        pingIntervalMs: ULong = 10_000u,
        pongTimeoutMs: ULong = 2_000u,
        resume: Boolean = false,
    ) = ChannelConfig(
        path = "/ws",
        pingIntervalMs = pingIntervalMs,
        pongTimeoutMs = pongTimeoutMs,
        initialBackoffMs = 20u,
        maxBackoffMs = 200u,
        stableAfterMs = 100u,
        resume = resume,
    )

    private fun realtimeStats() = server.stats().getJSONObject("realtime")

    @Test
    fun `an abrupt drop reconnects and flushes the queue in order`() = runBlocking<Unit> {
        val (channel, events) = open()
        events.connected()
        server.injectFault("""{"path":"/ws","count":1,"kind":"delay","delay_ms":500}""")

        server.realtime("drop")
        events.reconnecting()
        for (n in 1..5) channel.sendText("queued $n")
        val queuedWhileDown = channel.queuedMessages()
        events.connected()
        val echoed = (1..5).map { events.text() }

        assertEquals(5uL, queuedWhileDown)
        assertEquals((1..5).map { "queued $it" }, echoed)
        assertEquals(2, realtimeStats().getInt("connections_accepted"))
        channel.close()
    }

    @Test
    fun `a silent connection is replaced within ping interval plus pong timeout`() =
        runBlocking<Unit> {
            val (channel, events) = open(fast(pingIntervalMs = 150u, pongTimeoutMs = 150u))
            events.connected()
            delay(750)
            assertTrue(channel.state().isConnected)

            server.realtime("silence")
            val silenced = System.nanoTime()
            val cause = events.reconnecting()
            val detectedMs = (System.nanoTime() - silenced) / 1_000_000
            events.connected()

            assertTrue(detectedMs <= 300 + 250, "detected after $detectedMs ms")
            assertTrue(cause.message!!.contains("pong"), cause.message)
            assertEquals(2, realtimeStats().getInt("connections_accepted"))
            channel.close()
        }

    @Test
    fun `an expired token reconnects with a fresh one`() = runBlocking<Unit> {
        val (channel, events) = open()
        events.connected()

        server.expireAccessTokens()
        server.realtime("drop")
        events.reconnecting()
        events.connected()
        channel.sendText("still alice")

        assertEquals("still alice", events.text())
        val stats = server.stats()
        assertEquals(1, stats.getJSONObject("realtime").getInt("handshakes_rejected"))
        assertEquals(1, stats.getJSONObject("oauth").getInt("refresh_grants"))
        channel.close()
    }

    @Test
    fun `no attempts while offline and at once when back`() = runBlocking<Unit> {
        val (channel, events) = open()
        events.connected()

        sessionClient.setOnline(false)
        events.await { (it as? ChannelEvent.State)?.state as? ChannelState.WaitingForNetwork }
        val before = server.requestsTo("GET /ws")
        server.realtime("drop")
        delay(500)
        val whileOffline = server.requestsTo("GET /ws") - before
        sessionClient.setOnline(true)
        events.connected()

        assertEquals(0, whileOffline)
        assertEquals(1, realtimeStats().getInt("open_connections"))
        channel.close()
    }

    @Test
    fun `no event is lost across a reconnect with resume`() = runBlocking<Unit> {
        val (channel, events) = open(fast(resume = true))
        events.connected()
        server.publish("""{"n":1}""")
        assertEquals(1uL, events.event().id)
        server.injectFault("""{"path":"/ws","count":1,"kind":"delay","delay_ms":300}""")

        server.realtime("drop")
        events.reconnecting()
        server.publish("""{"n":2}""")
        server.publish("""{"n":3}""")
        events.connected()
        val replayed = listOf(events.event(), events.event())

        assertEquals(listOf(2uL, 3uL), replayed.map { it.id })
        assertEquals("""{"n":3}""", replayed[1].data)
        assertEquals(3uL, channel.lastEventId())
        assertEquals(2, realtimeStats().getInt("events_replayed"))
        channel.close()
    }

    @Test
    fun `refused handshakes back off without a storm`() = runBlocking<Unit> {
        server.injectFault("""{"path":"/ws","count":10000,"kind":"status","status":503}""")
        val (channel, events) = open()

        val started = System.nanoTime()
        val waits = mutableListOf<ChannelState.Reconnecting>()
        while (System.nanoTime() - started < 1_500_000_000L) {
            waits += events.await { (it as? ChannelEvent.State)?.state as? ChannelState.Reconnecting }
        }
        val attempts = server.requestsTo("GET /ws")
        channel.disconnect()

        for (wait in waits) {
            val ceiling = minOf(200L, 20L shl minOf(wait.attempt.toInt() - 1, 16))
            assertTrue(wait.delayMs.toLong() <= ceiling, "retry ${wait.attempt} waited ${wait.delayMs}")
        }
        assertTrue(attempts in 3..45, "$attempts attempts in 1.5 s")
        channel.close()
    }

    @Test
    fun `a final close code stops the channel and the flow completes`() = runBlocking<Unit> {
        val config = fast().copy(finalCloseCodes = listOf(4001.toUShort()))
        val (channel, events) = open(config)
        events.connected()

        server.realtime("close", """{"code":4001,"reason":"banned"}""")
        val reason = events.await {
            ((it as? ChannelEvent.State)?.state as? ChannelState.Disconnected)?.reason
        }

        assertEquals(DisconnectReason.ClosedByServer(4001.toUShort(), "banned"), reason)
        expectThrows<RoundtripException.ChannelClosed> { channel.sendText("x") }
        withTimeout(5_000) { events.completed() }
        channel.close()
    }
}

/** Tokens in memory, as a test's token store. */
class MemoryTokenStore : TokenStore {
    private val tokens = AtomicReference<StoredTokens?>(null)

    override fun load(): StoredTokens? = tokens.get()

    override fun save(tokens: StoredTokens) = this.tokens.set(tokens)

    override fun clear() = tokens.set(null)
}

/** A channel's events collected through [events], with bounded waits. */
class Events(channel: Channel, scope: CoroutineScope) {
    private val queue = Queue<ChannelEvent>(Queue.UNLIMITED)
    private val seen = mutableListOf<ChannelEvent>()
    private val done = kotlinx.coroutines.CompletableDeferred<Unit>()

    init {
        channel.events()
            .onEach { queue.send(it) }
            .launchIn(scope)
            .invokeOnCompletion { done.complete(Unit) }
    }

    /** The next event [pick] maps to a value, within 5 s. */
    suspend fun <T : Any> await(pick: (ChannelEvent) -> T?): T = try {
        withTimeout(5_000) {
            var found: T? = null
            while (found == null) {
                val event = queue.receive()
                seen += event
                found = pick(event)
            }
            found
        }
    } catch (e: kotlinx.coroutines.TimeoutCancellationException) {
        throw AssertionError("no matching event in time; saw $seen", e)
    }

    suspend fun connected() =
        await { (it as? ChannelEvent.State)?.state as? ChannelState.Connected }

    suspend fun reconnecting(): RoundtripException =
        await { ((it as? ChannelEvent.State)?.state as? ChannelState.Reconnecting)?.cause }

    suspend fun text(): String = await { (it as? ChannelEvent.Text)?.text }

    suspend fun event(): ChannelEvent.Event = await { it as? ChannelEvent.Event }

    /** Completes when the flow has completed. */
    suspend fun completed() = done.await()
}
