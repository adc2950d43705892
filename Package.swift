// swift-tools-version:6.1
// SPDX-License-Identifier: MIT
import PackageDescription

// The layers, each a target the compiler keeps apart (README: Architecture):
//
//   PhyrAPI     the C entry points: validate, call, turn the error into -errno
//               and a sentence                    -> Phyr, PhyrCore, CPhyr
//   Phyr        the library's policy: pins, rings, process lifetime; no system
//               call, no Glibc, no C              -> PhyrKernel, PhyrCore
//   PhyrKernel  every system call and /proc or sysfs read, and nothing else
//                                                 -> CPhyr, PhyrCore
//   PhyrCore    pure: models, planners, parsers of the kernel's text; imports
//               nothing
//   CPhyr       C: the public header, the kernel UAPI Bookworm's headers lack,
//               the fork guard, the io_uring shim (the only <liburing.h>)
//
// phyr-inspect reads other processes through the kernel layer and concludes
// with the core; it does not link the C API.
// The library and phyr-inspect ship in Embedded Swift (PHYR_EMBEDDED=1,
// `make lib tool`): no Swift runtime, a few hundred KB each, NEEDED libc, libm
// and ld.so only.  The same sources build as ordinary Swift for the tests.
let embedded = Context.environment["PHYR_EMBEDDED"] == "1"
// A section per function: the linker drops what nothing calls (--gc-sections)
// and folds what is identical (--icf): the library's size.
let library: [SwiftSetting] = embedded
    ? [.enableExperimentalFeature("Embedded"), .unsafeFlags(["-function-sections"])] : []

// Keeps the lookup's binary search branch-free (BufferIndex.find): LLVM's
// passes that turn selects back into branches (the x86 one for loops, the
// generic select optimizer) are off.  PhyrAPI too: Embedded Swift compiles
// a specialization of the search again where ring_reg_lookup calls it.
let branchFree: [SwiftSetting] = [.unsafeFlags(["-Xllvm", "-x86-cmov-converter=false",
                                                "-Xllvm", "-disable-select-optimize"])]

let package = Package(
    name: "phyr",
    products: [
        // libphyr.so: the C library.  The Makefile adds the soname, the version
        // script, -z nodelete and, in Embedded Swift, the Unicode tables.
        .library(name: "phyr", type: .dynamic, targets: ["PhyrAPI"]),
        .executable(name: "phyr-inspect", targets: ["PhyrInspect"]),
    ],
    targets: [
        .target(name: "CPhyr", cSettings: [.define("_FORTIFY_SOURCE", to: "2", .when(configuration: .release))]
                    + (embedded ? [.define("PHYR_EMBEDDED")] : [])),
        .target(name: "PhyrCore", swiftSettings: library),
        .target(name: "PhyrKernel", dependencies: ["CPhyr", "PhyrCore"], swiftSettings: library),
        .target(name: "Phyr", dependencies: ["PhyrKernel", "PhyrCore"], swiftSettings: library + branchFree),
        .target(name: "PhyrAPI", dependencies: ["Phyr", "PhyrCore", "CPhyr"], swiftSettings: library + branchFree,
                linkerSettings: embedded ? [.linkedLibrary("m")] : []),
        .executableTarget(name: "PhyrInspect", dependencies: ["PhyrKernel", "PhyrCore"], swiftSettings: library,
                          linkerSettings: embedded ? [.linkedLibrary("m")] : []),
        // The pure core's tests alone: `make test-core`, seconds after a core edit.
        .testTarget(name: "PhyrCoreTests", dependencies: ["PhyrCore", "PhyrTestSupport"]),
        // The kernel layer against the running kernel, the policy's models.
        .testTarget(name: "PhyrTests", dependencies: ["PhyrAPI", "Phyr", "PhyrKernel", "PhyrCore", "CPhyr",
                                                      "PhyrTestSupport"]),
        // What both test targets share: a seeded generator.
        .target(name: "PhyrTestSupport", path: "Tests/PhyrTestSupport"),
    ]
)
