// SPDX-License-Identifier: MIT
import PhyrTestSupport
import Testing
@testable import PhyrCore

/// The counted interval map against a per-unit array of counts.
@Suite struct CountedIntervalMapTests {
    static func units(_ pieces: [Range<UInt64>]) -> Set<UInt64> {
        Set(pieces.flatMap { Array($0) })
    }

    @Test(arguments: 0..<40)
    func matchesPerUnitCounts(seed: Int) {
        var rng = SplitMix(seed: UInt64(seed) &+ 1000)
        let universe = 48
        var map = CountedIntervalMap()
        var counts = [Int64](repeating: 0, count: universe)
        var live: [Range<UInt64>] = []
        for _ in 0..<400 {
            if live.isEmpty || Bool.random(using: &rng) {
                let lo = UInt64.random(in: 0..<UInt64(universe - 1), using: &rng)
                let hi = UInt64.random(in: (lo + 1)...UInt64(universe), using: &rng)
                let fresh = map.add(lo..<hi)
                let expected = Set((lo..<hi).filter { counts[Int($0)] == 0 })
                #expect(Self.units(fresh) == expected)
                // Pieces come out ordered, disjoint and maximal.
                for (a, b) in zip(fresh, fresh.dropFirst()) { #expect(a.upperBound < b.lowerBound) }
                for u in lo..<hi { counts[Int(u)] += 1 }
                live.append(lo..<hi)
            } else {
                let i = Int.random(in: 0..<live.count, using: &rng)
                let r = live.remove(at: i)
                let freed = map.remove(r)
                #expect(freed != nil)
                let expected = Set(r.filter { counts[Int($0)] == 1 })
                #expect(Self.units(freed ?? []) == expected)
                for u in r { counts[Int(u)] -= 1 }
            }
            #expect((0..<universe).map { map.coverage(at: UInt64($0)) } == counts)
            #expect(map.boundaryCount <= 2 * live.count)
        }
        for r in live { _ = map.remove(r) }
        #expect(map.isEmpty)
    }

    @Test func removingUncoveredChangesNothing() {
        var map = CountedIntervalMap()
        _ = map.add(10..<20)
        #expect(map.remove(5..<15) == nil)
        #expect(map.remove(15..<25) == nil)
        #expect(map.coverage(at: 12) == 1 && map.coverage(at: 5) == 0)
        #expect(map.remove(10..<20) == [10..<20])
        #expect(map.isEmpty)
    }

    @Test func adjacentIntervalsMergeBoundaries() {
        var map = CountedIntervalMap()
        #expect(map.add(0..<10) == [0..<10])
        #expect(map.add(10..<20) == [10..<20])
        #expect(map.boundaryCount == 2)  // one run [0, 20) at count 1
        #expect(map.add(5..<15) == [])
        #expect(map.coveredRuns.map(\.count) == [1, 2, 1])
    }
}
