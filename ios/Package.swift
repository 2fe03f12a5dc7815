// swift-tools-version:5.9
//
// Roundtrip for iOS and macOS. The Rust core ships as a static library inside
// build/RoundtripFFI.xcframework; make it, and the generated Swift sources,
// with ./build-xcframework.sh (see README.md).

import PackageDescription

let package = Package(
    name: "Roundtrip",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Roundtrip", targets: ["Roundtrip"]),
    ],
    targets: [
        // The C ABI of the Rust library: libroundtrip_ffi.a per platform, plus the
        // RoundtripFFI.h header and module map that UniFFI generates.
        .binaryTarget(name: "RoundtripFFI", path: "build/RoundtripFFI.xcframework"),

        // Generated bindings (Sources/Roundtrip/Generated) and the hand-written helpers.
        .target(
            name: "Roundtrip",
            dependencies: ["RoundtripFFI"],
            path: "Sources/Roundtrip",
            linkerSettings: [
                // reqwest verifies certificates through rustls-platform-verifier,
                // which calls into Security.framework on Apple platforms.
                .linkedFramework("Security"),
                .linkedFramework("CoreFoundation"),
            ]
        ),
    ]
)
