package dev.roundtrip

import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.TestInstance

/**
 * Base of the tests that talk to the reference server: one server per test class, reset before
 * every test, and a fresh [client] for every test so no state leaks between them.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class ServerTest {
    protected lateinit var server: TestServer
    protected lateinit var client: Client

    /** Retries quickly so that the retry tests do not sleep through real backoff. */
    protected open fun config(baseUrl: String) = ClientConfig(
        baseUrl = baseUrl,
        requestTimeoutMs = 10_000u,
        retry = RetryConfig(
            maxAttempts = 3u,
            initialDelayMs = 10u,
            maxDelayMs = 100u,
            maxElapsedMs = 10_000u,
        ),
    )

    /** Builds the [client] of each test; override to pass more than a [config]. */
    protected open fun createClient(baseUrl: String): Client = Client(config(baseUrl))

    @BeforeAll
    fun startServer() {
        server = TestServer.start(javaClass.simpleName)
    }

    @AfterAll
    fun stopServer() {
        if (::server.isInitialized) server.close()
    }

    @BeforeEach
    fun resetServerAndClient() {
        server.reset()
        client = createClient(server.baseUrl)
    }

    @AfterEach
    fun closeClient() {
        if (::client.isInitialized) client.close()
    }
}

/**
 * Runs [block] and returns the exception of type [T] it threw; fails when it threw nothing or
 * something else. Inline, so [block] may call suspend functions when used inside a coroutine.
 */
inline fun <reified T : Throwable> expectThrows(block: () -> Unit): T {
    val thrown = try {
        block()
        null
    } catch (e: Throwable) {
        e
    }

    if (thrown is T) return thrown
    throw AssertionError(
        "expected ${T::class.qualifiedName}, but " +
            (thrown?.let { "got $it" } ?: "nothing was thrown"),
        thrown,
    )
}
