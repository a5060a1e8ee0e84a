// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "ssl-daemon",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ssl-daemon", targets: ["ssl-daemon"]),
        .library(name: "StreamDecode", targets: ["StreamDecode"]),
        .library(name: "TemporalContrast", targets: ["TemporalContrast"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat libavcodec libswscale libswresample libavutil",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libswresample-dev", "libavutil-dev"])]
        ),
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Open MPI, for data-parallel training across processes (only `mpirun` makes it initialise).
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        .target(
            name: "StreamDecode",
            dependencies: ["CFFmpeg"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        // glibc's mallopt: training allocates the same large buffers every step.
        .systemLibrary(name: "CMalloc"),
        // oneDNN's direct convolutions (the library PyTorch uses for CPU convolutions).
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .target(
            name: "TemporalContrast",
            dependencies: ["CBLAS", "CMalloc", "CDNNL", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Export/ONNX/onnx.proto", "Export/ONNX/README.md"],
            swiftSettings: [.enableUpcomingFeature("InternalImportsByDefault")]
        ),
        // Config, ledger and state-directory lock: what the daemon's commands and the fuzz
        // targets share (package access, so it needs no public API).
        .target(
            name: "DaemonRuntime",
            dependencies: [
                "StreamDecode",
                "TemporalContrast",
            ]
        ),
        .executableTarget(
            name: "ssl-daemon",
            dependencies: [
                "CMPI",
                "DaemonRuntime",
                "StreamDecode",
                "TemporalContrast",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Shared by the test targets: child processes (ffmpeg, the built binary), temp dirs, ports.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "StreamDecodeTests",
            dependencies: ["StreamDecode", "TestSupport"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "TemporalContrastTests",
            dependencies: ["TemporalContrast"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"], exclude: ["Python"]),
        .testTarget(name: "DaemonRuntimeTests", dependencies: ["DaemonRuntime", "TemporalContrast"]),
        // Fuzz targets (scripts/fuzz.sh)
        .target(name: "FuzzSupport", path: "Fuzz/FuzzSupport"),
        .executableTarget(name: "FuzzSafeTensors", dependencies: ["FuzzSupport", "TemporalContrast"], path: "Fuzz/FuzzSafeTensors"),
        .executableTarget(name: "FuzzCheckpoint", dependencies: ["FuzzSupport", "TemporalContrast"], path: "Fuzz/FuzzCheckpoint"),
        .executableTarget(name: "FuzzConfig", dependencies: ["FuzzSupport", "DaemonRuntime"], path: "Fuzz/FuzzConfig"),
        .executableTarget(name: "FuzzLedger", dependencies: ["FuzzSupport", "DaemonRuntime"], path: "Fuzz/FuzzLedger"),
    ],
    swiftLanguageModes: [.v6]
)
