// Shortcuts over the generated push API: handing over a platform's token, and recognising an
// incoming data message addressed to Roundtrip. Reconciliation, retries and storage all happen
// in Rust.

package dev.roundtrip

/**
 * Hands over the Firebase Cloud Messaging registration token.
 *
 * Call it from `FirebaseMessagingService.onNewToken` and once at every start with the result of
 * `FirebaseMessaging.getInstance().token`: a token that did not change costs no request. The
 * registration happens in the background; [Push.reconcile] waits for it.
 *
 * ```kotlin
 * class AppMessagingService : FirebaseMessagingService() {
 *     override fun onNewToken(token: String) {
 *         App.client.push()?.setFcmToken(token)
 *     }
 * }
 * ```
 *
 * @throws RoundtripException.InvalidInput for a token no server could use.
 */
fun Push.setFcmToken(token: String) = setToken(PushToken.Fcm(token))

/**
 * Hands over the endpoint a UnifiedPush distributor gave the app (`onNewEndpoint`).
 *
 * @throws RoundtripException.InvalidInput when [endpoint] is not an http(s) URL.
 */
fun Push.setUnifiedPushEndpoint(endpoint: String) = setToken(PushToken.UnifiedPush(endpoint))

/**
 * Reads a Firebase data message's payload (`RemoteMessage.data`) and returns the message when it
 * is addressed to Roundtrip, or `null` when it is the app's own.
 *
 * ```kotlin
 * override fun onMessageReceived(message: RemoteMessage) {
 *     val roundtrip = roundtripMessage(message.data) ?: return handleOwn(message)
 *     if (roundtrip.isSync) scheduleSync()
 * }
 * ```
 */
fun roundtripMessage(data: Map<String, String>): RoundtripMessage? = parseRoundtripMessage(data)

/** Whether the message says data changed on the server and the app should pull it. */
val RoundtripMessage.isSync: Boolean
    get() = kind == "sync"
