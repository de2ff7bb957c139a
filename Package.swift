// swift-tools-version: 6.1
import PackageDescription

// Release builds run the kernels: drop runtime checks (`-Ounchecked`) and, on x86_64, target
// AVX2/FMA so SIMD8<Float> and half-float conversion compile to vector instructions.
var releaseFlags: [String] = ["-Ounchecked"]
#if arch(x86_64)
releaseFlags += ["-target-cpu", "haswell"]
#endif
let settings: [SwiftSetting] = [
    .unsafeFlags(releaseFlags, .when(configuration: .release)),
    .swiftLanguageMode(.v5),
]

let package = Package(
    name: "ParaDiT",
    products: [
        .executable(name: "paradit", targets: ["paradit"]),
        .library(name: "ParaDiTTensor", targets: ["ParaDiTTensor"]),
        .library(name: "ParaDiTWeights", targets: ["ParaDiTWeights"]),
        .library(name: "ParaDiTTokenizers", targets: ["ParaDiTTokenizers"]),
        .library(name: "ParaDiTModels", targets: ["ParaDiTModels"]),
        .library(name: "ParaDiTDiffusion", targets: ["ParaDiTDiffusion"]),
        .library(name: "ParaDiTDistributed", targets: ["ParaDiTDistributed"]),
        .library(name: "ParaDiTParallel", targets: ["ParaDiTParallel"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The server: HTTP on SwiftNIO (without swift-configuration) and Prometheus text metrics.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Layer 1: C shims.
        .systemLibrary(
            name: "CParaDiTBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CParaDiTMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        // oneDNN's 8-bit matrix product (u8 × s8 → s32, VNNI/AMX kernels), wrapped in C.
        .target(
            name: "CParaDiTDNNL",
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]
        ),
        // The engine's own C kernels for instruction sets chosen at run time (AVX-512).
        .target(name: "CParaDiTKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Layer 2: tensor core and kernels.
        .target(
            name: "ParaDiTTensor",
            dependencies: ["CParaDiTBLAS", "CParaDiTDNNL", "CParaDiTKernels"],
            swiftSettings: settings
        ),
        // Layer 3: checkpoints and configs.
        .target(
            name: "ParaDiTWeights",
            dependencies: ["ParaDiTTensor"],
            swiftSettings: settings
        ),
        // Layer 3b: prompts into token ids, as the pipelines' tokenizer folders define them.
        .target(
            name: "ParaDiTTokenizers",
            swiftSettings: settings
        ),
        // Layer 4: the models, written serially against a token layout and an attention runtime.
        .target(
            name: "ParaDiTModels",
            dependencies: ["ParaDiTTensor", "ParaDiTWeights"],
            swiftSettings: settings
        ),
        // Layer 5: schedulers, torch-exact noise, the VAE decoder, image files.
        .target(
            name: "ParaDiTDiffusion",
            dependencies: ["ParaDiTTensor", "ParaDiTWeights", "ParaDiTModels", "ParaDiTTokenizers"],
            swiftSettings: settings
        ),
        // Layer 6: communicators between ranks (local threads now; MPI next).
        .target(
            name: "ParaDiTDistributed",
            dependencies: ["ParaDiTTensor", "CParaDiTMPI"],
            swiftSettings: settings
        ),
        // Layer 7: parallel strategies as attention runtimes and step schedules.
        .target(
            name: "ParaDiTParallel",
            dependencies: ["ParaDiTTensor", "ParaDiTModels", "ParaDiTDiffusion", "ParaDiTDistributed"],
            swiftSettings: settings
        ),
        // Layer 8: the command-line app, as a library so tests can drive its commands.
        .target(
            name: "ParaDiTCLI",
            dependencies: [
                "ParaDiTTensor",
                "ParaDiTModels",
                "ParaDiTDiffusion",
                "ParaDiTDistributed",
                "ParaDiTParallel",
                "ParaDiTTokenizers",
                "ParaDiTServe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        // Layer 8b: `paradit serve`, the OpenAI-compatible image server over a rank loop.
        .target(
            name: "ParaDiTServe",
            dependencies: [
                "ParaDiTTensor",
                "ParaDiTModels",
                "ParaDiTDiffusion",
                "ParaDiTDistributed",
                "ParaDiTParallel",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: settings
        ),
        .executableTarget(
            name: "paradit",
            dependencies: ["ParaDiTCLI", .product(name: "Logging", package: "swift-log")],
            swiftSettings: settings
        ),
        .testTarget(
            name: "ParaDiTTensorTests",
            dependencies: ["ParaDiTTensor"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTWeightsTests",
            dependencies: ["ParaDiTWeights"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTTokenizersTests",
            dependencies: ["ParaDiTTokenizers"],
            exclude: ["Fixtures"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTModelsTests",
            dependencies: ["ParaDiTModels"],
            exclude: ["Fixtures"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTDiffusionTests",
            dependencies: ["ParaDiTDiffusion"],
            exclude: ["Fixtures"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTParallelTests",
            dependencies: ["ParaDiTParallel"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTDistributedTests",
            dependencies: ["ParaDiTDistributed"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTServeTests",
            dependencies: ["ParaDiTServe"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .testTarget(
            name: "ParaDiTCLITests",
            dependencies: ["ParaDiTCLI"],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
    ]
)
