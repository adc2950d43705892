// SPDX-License-Identifier: MIT
import Testing
@testable import PhyrCore
/// A seeded generator, so every property test replays the same cases.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
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
func isNil<T>(_ x: T?) -> Bool { x == nil }

extension PinTable {
    /// `insert` in a test: a table this small always has room.
    mutating func added(_ pin: PinnedRange) throws -> (id: UInt64, lock: [Range<UInt64>], dontfork: [Range<UInt64>]) {
        let result = insert(pin)
        return try #require(result)
    }
}

extension PinTable {
    /// `removeRange`'s freed memory, or nil when `id` is not live.
    mutating func removed(_ id: UInt64) -> [Range<UInt64>]? { removeRange(id)?.freed }

    /// `split`'s tail; throws where the split would not cut.
    mutating func splitTail(_ id: UInt64, at offset: UInt64, heldHead: HeldBuffer? = nil,
                            heldTail: HeldBuffer? = nil) throws(PhyrError) -> (tail: UInt64, unheld: [HeldBuffer]) {
        switch try split(id, at: offset, heldHead: heldHead, heldTail: heldTail) {
        case .split(let tail, let unheld): return (tail, unheld)
        case .heldChanged: throw PhyrError(.EAGAIN, "held buffers changed")
        }
    }
}

/// The error `body` throws, or nil.
func refusal<T>(_ body: () throws(PhyrError) -> T) -> PhyrError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}
