// SPDX-License-Identifier: MIT

/// A seeded generator, so every property test replays the same cases.
package struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    package init(seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `#expect(x == nil)` with `x` an `Optional<UInt64>` makes Swift Testing's
/// comparison read 9 bytes out of an 8-byte slot (AddressSanitizer reports
/// it in `_convertToAnyHashable`, Swift 6.3.1): tests ask this instead, and
/// compare optional integers as `x ?? 0 == y`.
package func isNil<T>(_ x: T?) -> Bool { x == nil }
