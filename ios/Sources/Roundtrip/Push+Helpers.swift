// Swift-style shortcuts over the generated push API: handing over the APNs device token, and
// recognising an incoming notification addressed to Roundtrip. Reconciliation, retries and
// storage all happen in Rust.

import Foundation

extension Push {
    /// Hands over the APNs device token. Call it from
    /// `application(_:didRegisterForRemoteNotificationsWithDeviceToken:)`, which iOS calls at
    /// every launch after `registerForRemoteNotifications()`: a token that did not change costs
    /// no request. The registration happens in the background; `reconcile()` waits for it.
    ///
    /// ```swift
    /// func application(_ application: UIApplication,
    ///                   didRegisterForRemoteNotificationsWithDeviceToken deviceToken: Data) {
    ///     try? AppModel.client.push()?.setAPNsToken(deviceToken)
    /// }
    /// ```
    ///
    /// - Throws: `RoundtripError.InvalidInput` for an empty token.
    public func setAPNsToken(_ deviceToken: Data) throws {
        try setToken(token: .apns(deviceToken: deviceToken))
    }
}

extension RoundtripMessage {
    /// Reads a remote notification's `userInfo` and returns the message when it is addressed to
    /// Roundtrip, or `nil` when it is the app's own.
    ///
    /// ```swift
    /// func application(_ application: UIApplication,
    ///                   didReceiveRemoteNotification userInfo: [AnyHashable: Any]) async
    ///     -> UIBackgroundFetchResult {
    ///     guard let message = RoundtripMessage(userInfo: userInfo) else { return .noData }
    ///     if message.isSync { await AppModel.sync() }
    ///     return .newData
    /// }
    /// ```
    public init?(userInfo: [AnyHashable: Any]) {
        var payload: [String: Any] = [:]
        for (key, value) in userInfo {
            if let key = key as? String {
                payload[key] = value
            }
        }
        guard JSONSerialization.isValidJSONObject(payload),
              let data = try? JSONSerialization.data(withJSONObject: payload),
              let json = String(data: data, encoding: .utf8),
              let message = parseRoundtripMessageJson(json: json)
        else {
            return nil
        }
        self = message
    }

    /// Whether the message says data changed on the server and the app should pull it.
    public var isSync: Bool {
        kind == "sync"
    }
}
