// SPDX-License-Identifier: MIT
/// One slot's contents in an io_uring buffer table: a buffer's address and
/// length, or empty.
package struct BufferSpan: Equatable, Sendable {
    package var addr: UInt64
    package var len: UInt64

    package init(addr: UInt64, len: UInt64) {
        self.addr = addr
        self.len = len
    }

    package static let empty = BufferSpan(addr: 0, len: 0)
}

/// The kernel's limit on a buffer table (IORING_MAX_REG_BUFFERS).
package let maxBuffersPerTable = 1 << 14

/// Which slots of a ring's buffer table hold what.  Slots are handed out
/// lowest first, so units registered in address order get ascending indices.
package struct SlotTable: Sendable {
    package private(set) var size: Int
    private var occupant: [UInt64?]  // registration id per slot
    package private(set) var used = 0
    /// No slot below this is free: registering one buffer at a time into a
    /// full-ish table stays linear overall, not quadratic.
    private var firstFree = 0

    package init(size: Int) {
        self.size = size
        occupant = Array(repeating: nil, count: size)
    }

    package var free: Int { size - used }

    package func isFree(_ slot: Int) -> Bool { slot < size && occupant[slot] == nil }

    /// The lowest `count` free slots, or nil when there are not that many.
    package func lowestFree(_ count: Int) -> [Int]? {
        guard count <= free else { return nil }
        var out: [Int] = []
        out.reserveCapacity(count)
        for i in firstFree..<size where occupant[i] == nil {
            out.append(i)
            if out.count == count { break }
        }
        return out
    }

    package mutating func take(_ slots: [Int], for registration: UInt64) {
        for s in slots where occupant[s] == nil {
            occupant[s] = registration
            used += 1
        }
        while firstFree < size && occupant[firstFree] != nil { firstFree += 1 }
    }

    package mutating func release(_ slots: [Int]) {
        for s in slots where s < size && occupant[s] != nil {
            occupant[s] = nil
            used -= 1
            firstFree = min(firstFree, s)
        }
    }

    package mutating func grow(to newSize: Int) {
        guard newSize > size else { return }
        occupant.append(contentsOf: repeatElement(nil, count: newSize - size))
        size = newSize
    }

    /// Consecutive runs of slot numbers, for batching kernel updates.
    package static func runs(_ slots: [Int]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        for s in slots.sorted() {
            if let last = out.last, last.upperBound == s {
                out[out.count - 1] = last.lowerBound..<(s + 1)
            } else {
                out.append(s..<(s + 1))
            }
        }
        return out
    }
}
