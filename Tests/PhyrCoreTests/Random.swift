// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore
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
