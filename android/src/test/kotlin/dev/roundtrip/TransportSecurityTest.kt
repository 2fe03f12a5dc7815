package dev.roundtrip

import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Test

class TransportSecurityTest {
    @Test
    fun `plain http to a remote host is refused`() = runBlocking<Unit> {
        // The base URL is checked when the client is built; a send is the second line of defence.
        // Either way no byte may leave for example.com.
        expectThrows<RoundtripException.InsecureTransport> {
            Client(ClientConfig(baseUrl = "http://example.com")).use { it.get("/health") }
        }
    }

    @Test
    fun `plain http to a remote host is accepted after an explicit opt-in`() {
        Client(ClientConfig(baseUrl = "http://example.com", allowInsecureHttp = true)).close()
    }
}
