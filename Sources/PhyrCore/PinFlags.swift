// SPDX-License-Identifier: MIT
/// Pin flags, as `phyr.h` defines them (PhyrTests checks them).
package enum PinFlag {
    package static let write: UInt32 = 0x1
    package static let phys: UInt32 = 0x2
    package static let longterm: UInt32 = 0x4
    package static let dontfork: UInt32 = 0x8
    package static let huge: UInt32 = 0x10
    package static let all: UInt32 = write | phys | longterm | dontfork | huge
}
