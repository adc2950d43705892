// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

@Suite struct OrderedMapTests {
    @Test(arguments: 0..<20)
    func matchesSortedReference(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed))
        var map = OrderedMap()
        var ref: [UInt64: Int64] = [:]
        let universe: UInt64 = seed % 2 == 0 ? 64 : 5000
        for _ in 0..<3000 {
            let k = UInt64.random(in: 0..<universe, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0, 1:
                let v = Int64.random(in: -5...5, using: &rng)
                map.set(k, v)
                ref[k] = v
            default:
                #expect(map.remove(k) == (ref.removeValue(forKey: k) != nil))
            }
            if map.count != ref.count { #expect(map.count == ref.count); return }
            // Checking against a sorted copy is the slow part: sample it.
            guard Int.random(in: 0..<8, using: &rng) == 0 else { continue }
            let q = UInt64.random(in: 0..<universe + 2, using: &rng)
            let keys = ref.keys.sorted()
            let agrees = map[q] == ref[q]
                && map.floor(q)?.key == keys.last { $0 <= q }
                && map.lower(q)?.key == keys.last { $0 < q }
                && map.higher(q)?.key == keys.first { $0 > q }
            #expect(agrees, "queries at \(q) disagree with the reference")
        }
        #expect(map.entries.map(\.key) == ref.keys.sorted())
        #expect(map.entries.map(\.value) == ref.keys.sorted().map { ref[$0]! })
    }

    @Test func extremeKeys() {
        var map = OrderedMap()
        map.set(UInt64.max, 1)
        map.set(0, 2)
        #expect(map.floor(UInt64.max)?.value ?? 0 == 1)
        #expect(map.higher(0)?.key ?? 0 == UInt64.max)
        #expect(isNil(map.higher(UInt64.max)))
        #expect(isNil(map.lower(0)))
        #expect(map.remove(0) && !map.remove(0))
    }

    /// Blocks fill, split, empty and are reused: the whole map twice over,
    /// in random order, against a reference, walked by positions both ways.
    @Test(arguments: 0..<6)
    func blocksSplitEmptyAndAreReused(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed) &+ 77)
        var map = OrderedMap()
        var ref: [UInt64: Int64] = [:]
        for round in 0..<2 {
            var keys = (0..<10_000).map { _ in UInt64.random(in: 0..<1_000_000, using: &rng) }
            for k in keys {
                map.set(k, Int64(round) + Int64(k % 7))
                ref[k] = Int64(round) + Int64(k % 7)
            }
            #expect(map.count == ref.count)
            let sorted = ref.keys.sorted()
            var forward: [UInt64] = []
            var p = map.position(atOrAfter: 0)
            while !map.isEnd(p) { forward.append(map.entry(at: p).key); p = map.after(p) }
            #expect(forward == sorted)
            var backward: [UInt64] = []
            var q = map.before(map.endPosition)
            while let at = q { backward.append(map.entry(at: at).key); q = map.before(at) }
            #expect(backward == sorted.reversed())
            keys.shuffle(using: &rng)
            for k in keys.prefix(keys.count - 100) {
                #expect(map.remove(k) == (ref.removeValue(forKey: k) != nil))
            }
            #expect(map.entries.map(\.key) == ref.keys.sorted())
        }
    }

    @Test func depthStaysLogarithmic() {
        // Sorted inserts are the worst case for an unbalanced tree; a treap
        // must absorb 200k of them without deep recursion.
        var map = OrderedMap()
        for k in 0..<200_000 { map.set(UInt64(k) * 4096, 1) }
        for k in stride(from: 0, to: 200_000, by: 2) { map.remove(UInt64(k) * 4096) }
        #expect(map.count == 100_000)
        #expect(map.floor(4096 * 3)?.key ?? 0 == 4096 * 3)
        #expect(map.floor(4096 * 2)?.key ?? 0 == 4096)
    }
}
