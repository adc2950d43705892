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
let package = Package(
    name: "phyr",
    products: [
        // libphyr.so: the C library.  The Makefile adds the soname, the version
        // script, -z nodelete and the static Swift runtime at link time.
        .library(name: "phyr", type: .dynamic, targets: ["PhyrAPI"]),
        .executable(name: "phyr-inspect", targets: ["PhyrInspect"]),
    ],
    targets: [
        .target(name: "CPhyr"),
        .target(name: "PhyrCore"),
        .target(name: "PhyrKernel", dependencies: ["CPhyr", "PhyrCore"]),
        .target(name: "Phyr", dependencies: ["PhyrKernel", "PhyrCore"],
                // Keeps the lookup's binary search branch-free (BufferIndex.find).
                swiftSettings: [.unsafeFlags(["-Xllvm", "-x86-cmov-converter=false"])]),
        .target(name: "PhyrAPI", dependencies: ["Phyr", "PhyrCore", "CPhyr"]),
        .executableTarget(name: "PhyrInspect", dependencies: ["PhyrKernel", "PhyrCore"]),
        // The pure core's tests alone: `make test-core`, seconds after a core edit.
        .testTarget(name: "PhyrCoreTests", dependencies: ["PhyrCore", "PhyrTestSupport"]),
        // The kernel layer against the running kernel, the policy's models.
        .testTarget(name: "PhyrTests", dependencies: ["PhyrAPI", "Phyr", "PhyrKernel", "PhyrCore", "CPhyr",
                                                      "PhyrTestSupport"]),
        // What both test targets share: a seeded generator.
        .target(name: "PhyrTestSupport", path: "Tests/PhyrTestSupport"),
    ]
)
