package dev.roundtrip

import kotlinx.coroutines.runBlocking
import org.json.JSONObject
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import java.io.File
import java.nio.file.Files

class PushTest : ServerTest() {
    private lateinit var storage: File
    private val apps = mutableListOf<Client>()

    @BeforeEach
    fun makeStorage() {
        storage = Files.createTempDirectory("roundtrip-push").toFile()
    }

    @AfterEach
    fun closeApps() {
        apps.forEach { it.close() }
        apps.clear()
        storage.deleteRecursively()
    }

    /** Starts the app: a client signed in as alice, with push, keeping its state in [storage]. */
    private fun startApp(
        appVersion: String = "3.0.1",
        reverifyIntervalMs: ULong? = null,
    ): Client {
        val config = config(server.baseUrl).copy(
            storageDir = storage.path,
            credentials = Credentials.BearerToken(server.accessToken("alice", "wonderland")),
            push = PushConfig(
                appVersion = appVersion,
                locale = "de-CH",
                reverifyIntervalMs = reverifyIntervalMs,
                backoff = PushBackoff(initialDelayMs = 20u, maxDelayMs = 200u),
            ),
        )
        return Client(config).also { apps += it }
    }

    private fun Client.requirePush(): Push = push() ?: error("the client was built without push")

    private fun pushStats(): JSONObject = server.stats().getJSONObject("push")

    @Test
    fun `registers the device with the app's token`() = runBlocking<Unit> {
        val push = startApp().requirePush()

        push.setFcmToken("kotlin-token-1")
        val status = push.reconcile()

        assertTrue(status.registered && status.upToDate, "$status")
        assertEquals("alice", status.user)
        val device = server.devices().getJSONObject(0)
        assertEquals(push.installationId(), device.getString("installation_id"))
        assertEquals("fcm", device.getString("platform"))
        assertEquals("kotlin-token-1", device.getString("token"))
        assertEquals("3.0.1", device.getString("app_version"))
        assertEquals("de-CH", device.getString("locale"))
        assertTrue(device.getBoolean("opt_in"))
    }

    @Test
    fun `APNs device tokens go out as hex`() = runBlocking<Unit> {
        val push = startApp().requirePush()
        val bytes = byteArrayOf(0xde.toByte(), 0xad.toByte(), 0x00, 0x7f)

        push.setToken(PushToken.Apns(bytes))
        push.reconcile()

        val device = server.devices().getJSONObject(0)
        assertEquals("apns", device.getString("platform"))
        assertEquals("dead007f", device.getString("token"))
    }

    @Test
    fun `a rotated token and an opt-out are registered again`() = runBlocking<Unit> {
        val push = startApp().requirePush()
        push.setFcmToken("kotlin-token-1")
        push.reconcile()

        push.setFcmToken("kotlin-token-2")
        push.reconcile()
        push.setOptIn(false)
        push.reconcile()

        val device = server.devices().getJSONObject(0)
        assertEquals("kotlin-token-2", device.getString("token"))
        assertFalse(device.getBoolean("opt_in"))
        assertEquals(3, pushStats().getInt("registrations"))
        assertEquals(1, server.devices().length())
    }

    @Test
    fun `a restart with nothing changed makes no call`() = runBlocking<Unit> {
        val first = startApp().requirePush()
        first.setFcmToken("kotlin-token-1")
        first.reconcile()
        val installationId = first.installationId()
        apps.removeAt(0).close()
        val restarted = startApp()
        val before = server.stats().getInt("total")

        val push = restarted.requirePush()
        push.setFcmToken("kotlin-token-1")
        val status = push.reconcile()

        assertEquals(installationId, push.installationId())
        assertTrue(status.upToDate, "$status")
        assertEquals(before, server.stats().getInt("total"))
        assertEquals(1, pushStats().getInt("registrations"))
    }

    @Test
    fun `a new app version registers again`() = runBlocking<Unit> {
        startApp().requirePush().apply {
            setFcmToken("kotlin-token-1")
            reconcile()
        }

        startApp(appVersion = "3.1.0").requirePush().apply {
            setFcmToken("kotlin-token-1")
            reconcile()
        }

        assertEquals("3.1.0", server.devices().getJSONObject(0).getString("app_version"))
        assertEquals(2, pushStats().getInt("registrations"))
    }

    @Test
    fun `a registration is retried in the background after 503s`() = runBlocking<Unit> {
        server.injectFault(
            """{"path":"/devices","method":"PUT","count":4,"kind":"status","status":503}""",
        )
        val push = startApp().requirePush()

        push.setFcmToken("kotlin-token-1")

        val stats = server.awaitStats { it.getJSONObject("push").getInt("devices") == 1 }
        assertEquals(1, stats.getJSONObject("push").getInt("devices"))
        assertEquals(5, server.requestsTo("PUT /devices/${push.installationId()}"))
        assertNull(push.reconcile().lastError)
    }

    @Test
    fun `a registration made offline resumes when the network returns`() = runBlocking<Unit> {
        val app = startApp()
        val push = app.requirePush()
        app.setOnline(false)

        push.setFcmToken("kotlin-token-1")
        expectThrows<RoundtripException.Offline> { push.reconcile() }
        assertEquals(0, pushStats().getInt("registrations"))
        app.setOnline(true)

        val stats = server.awaitStats { it.getJSONObject("push").getInt("devices") == 1 }
        assertEquals(1, stats.getJSONObject("push").getInt("devices"))
    }

    @Test
    fun `a registration the server dropped is repaired`() = runBlocking<Unit> {
        val push = startApp(reverifyIntervalMs = 300u).requirePush()
        push.setFcmToken("kotlin-token-1")
        push.reconcile()

        server.dropDevice(push.installationId())

        val stats = server.awaitStats { it.getJSONObject("push").getInt("devices") == 1 }
        assertEquals(1, stats.getJSONObject("push").getInt("devices"))
        assertEquals(2, stats.getJSONObject("push").getInt("registrations"))
        assertEquals(1, stats.getJSONObject("push").getInt("provider_deletions"))
    }

    @Test
    fun `a token no server could use is refused`() {
        val push = startApp().requirePush()

        expectThrows<RoundtripException.InvalidInput> {
            push.setUnifiedPushEndpoint("not a url")
        }
        expectThrows<RoundtripException.InvalidInput> { push.setFcmToken("") }
    }

    @Test
    fun `incoming data messages addressed to Roundtrip are recognised`() {
        val fcm = roundtripMessage(
            mapOf("roundtrip" to """{"kind":"sync","collections":["todos"]}""", "x" to "1"),
        )
        val apns = parseRoundtripMessageJson(
            """{"aps":{"content-available":1},"roundtrip":{"kind":"sync"}}""",
        )

        assertNotNull(fcm)
        assertTrue(fcm!!.isSync)
        assertEquals("todos", JSONObject(fcm.dataJson).getJSONArray("collections").getString(0))
        assertEquals("sync", apns?.kind)
        assertNull(roundtripMessage(mapOf("title" to "Hello")))
        assertNull(parseRoundtripMessageJson("""{"roundtrip":"garbage"}"""))
    }

    @Test
    fun `sign-out unregisters the device and the next user registers anew`() = runBlocking<Unit> {
        val config = config(server.baseUrl).copy(
            storageDir = storage.path,
            oauth = OAuthSettings(clientId = "roundtrip-demo", issuer = server.baseUrl),
            push = PushConfig(backoff = PushBackoff(initialDelayMs = 20u, maxDelayMs = 200u)),
        )
        val app = Client(config, RecordingTokenStore()).also { apps += it }
        val push = app.requirePush()
        app.signInWithPassword("alice", "wonderland")
        push.setFcmToken("kotlin-shared-device")
        assertEquals("alice", push.reconcile().user)

        app.signOut()

        assertEquals(0, server.devices().length(), "the device is still registered")
        assertEquals(1, pushStats().getInt("unregistrations"))
        assertEquals(0, pushStats().getInt("anonymous_unregistrations"))

        app.signInWithPassword("bob", "builder")
        val status = push.reconcile()

        assertEquals("bob", status.user)
        assertEquals("bob", server.devices().getJSONObject(0).getString("user"))
    }
}
