// swift-tools-version:6.1
// SPDX-License-Identifier: MIT
import PackageDescription

let package = Package(
    name: "phyr",
    products: [
        // libphyr.so: the C library.  The Makefile adds the soname, the version
        // script, -z nodelete and the static Swift runtime at link time.
        .library(name: "phyr", type: .dynamic, targets: ["Phyr"]),
    ],
    targets: [
        // Plain C: the public header (a link to include/phyr.h), the kernel UAPI
        // Bookworm's headers lack, thread-local storage.
        .target(name: "CPhyr"),
        .target(
            name: "Phyr",
            dependencies: ["CPhyr"]
        ),
        .testTarget(name: "PhyrTests", dependencies: ["Phyr"]),
    ]
)
