// swift-tools-version:6.1
// SPDX-License-Identifier: MIT
import PackageDescription

let package = Package(
    name: "phyr",
    products: [
        // libphyr.so: the C library.  The Makefile adds the soname, the version
        // script, -z nodelete and the static Swift runtime at link time.
        .library(name: "phyr", type: .dynamic, targets: ["Phyr"]),
        // phyr-inspect: any process's backing and io_uring buffers, read
        // through the library's own kernel readers.
        .executable(name: "phyr-inspect", targets: ["PhyrInspect"]),
    ],
    targets: [
        // Plain C: the public header (a link to include/phyr.h), the kernel UAPI
        // Bookworm's headers lack, thread-local storage.
        .target(name: "CPhyr"),
        // The pure core: no system call, no C, no Glibc -- the planner, the
        // counted interval map, the pin table, the reading of kernel answers.
        // A target of its own, so its purity is the compiler's to enforce.
        .target(name: "PhyrCore"),
        .target(
            name: "Phyr",
            dependencies: ["CPhyr", "PhyrCore"]
        ),
        .executableTarget(
            name: "PhyrInspect",
            dependencies: ["CPhyr", "Phyr", "PhyrCore"]
        ),
        .testTarget(name: "PhyrTests", dependencies: ["Phyr", "PhyrCore"]),
    ]
)
