// SPDX-License-Identifier: MIT
import Glibc
import Synchronization
import PhyrTestSupport
import Testing
@testable import Phyr
@testable import PhyrCore

/// The lookup index's seqlock, alone: one writer rewrites a block as fast as
/// it can while readers read it whole.  Every answer a reader gets must be
/// one the writer wrote, never a mix of two; under the thread sanitizer
/// (`make check` runs this suite with -sanitize=thread) it must also be free
/// of data races.
@Suite struct BufferIndexTests {
    static let handle = RegistrationHandles.handle(slot: 7, serial: 42)

    /// Generation `g`'s contents: every field says `g`, so a torn read shows.
    static func units(_ g: UInt64) -> (units: [BufferUnit], slots: [Int]) {
        let n = 8 + Int(g % 9)
        let units = (0..<n).map { i in
            BufferUnit(addr: g << 32 | UInt64(i) << 21, len: 1 << 21 - UInt64(i), pageShift: i % 2 == 0 ? 21 : 12)
        }
        return (units, (0..<n).map { Int((g &+ UInt64($0)) & 0x3FFF) })
    }

    /// nil when the block is consistent with one generation, else what is wrong.
    static func inconsistency(_ index: BufferIndex) -> String? {
        let n = index.count
        guard n > 0 else { return "empty" }
        let g = index.start(0) >> 32
        let want = units(g)
        guard n == want.units.count else { return "generation \(g) with \(n) entries" }
        for i in 0..<n {
            let u = want.units[i]
            if index.start(i) != u.addr || index.end(i) != u.end || index.slot(i) != UInt32(want.slots[i])
                || index.pageShift(i) != u.pageShift || index.flags(i) != (u.coalesces(on: .multiFolio) ? 1 : 0) {
                return "generation \(g), entry \(i) torn"
            }
        }
        return nil
    }

    final class Thread: @unchecked Sendable {
        let body: @Sendable () -> Void
        var id = pthread_t()
        init(_ body: @escaping @Sendable () -> Void) {
            self.body = body
            let me = Unmanaged.passRetained(self).toOpaque()
            pthread_create(&id, nil, { arg in
                guard let arg else { return nil }
                Unmanaged<Thread>.fromOpaque(arg).takeRetainedValue().body()
                return nil
            }, me)
        }
        func join() { pthread_join(id, nil) }
    }

    @Test func readersNeverSeeATornBlock() {
        let index = BufferIndex.allocate(capacity: 16)
        let first = Self.units(0)
        index.fill(handle: Self.handle, units: first.units, slots: first.slots, coalescing: .multiFolio)
        let done = Atomic<Bool>(false)
        let answered = Atomic<Int>(0), refused = Atomic<Int>(0), torn = Atomic<Int>(0)
        let firstTear = Mutex<String?>(nil)
        let base = UInt(bitPattern: index.base)

        let readers = (0..<2).map { _ in
            Thread {
                let index = BufferIndex(base: UnsafeMutableRawPointer(bitPattern: base)!)
                while !done.load(ordering: .relaxed) {
                    let outcome = index.read(as: Self.handle) { Self.inconsistency($0) }
                    switch outcome {
                    case nil:
                        refused.add(1, ordering: .relaxed)
                    case .some(nil):
                        answered.add(1, ordering: .relaxed)
                    case .some(.some(let what)):
                        torn.add(1, ordering: .relaxed)
                        firstTear.withLock { if $0 == nil { $0 = what } }
                    }
                }
            }
        }
        let generations = UInt64(max(1000, Double(100_000) * (getenv("PHYR_TEST_SCALE").map { atof($0) } ?? 1)))
        for g in 1...generations {
            let next = Self.units(g)
            if g % 997 == 0 { index.retire() }
            index.fill(handle: Self.handle, units: next.units, slots: next.slots, coalescing: .multiFolio)
        }
        done.store(true, ordering: .relaxed)
        readers.forEach { $0.join() }

        #expect(torn.load(ordering: .relaxed) == 0,
                "\(torn.load(ordering: .relaxed)) torn reads accepted, first: \(firstTear.withLock { $0 } ?? "")")
        #expect(answered.load(ordering: .relaxed) > 0, "no read was ever answered: the test proves nothing")
        #expect(refused.load(ordering: .relaxed) > 0, "no read ever raced the writer: the test proves nothing")
        // A handle the block does not belong to is never answered.
        #expect(index.read(as: Self.handle &+ 1) { _ in true } == nil)
    }
    /// The branch-free search against a linear scan: every count up to 40,
    /// buffers with and without gaps between them, every boundary address,
    /// and addresses no buffer can have.
    @Test func findAgreesWithALinearScan() {
        var rng = SplitMix(seed: 16)
        for n in 0...40 {
            let index = BufferIndex.allocate(capacity: BufferIndexPool.capacity(for: n))
            var units: [BufferUnit] = []
            var at: UInt64 = 0x7f00_0000_0000 + (rng.next() % 4) << 12
            for _ in 0..<n {
                let len = (1 + rng.next() % 4) << 12
                units.append(BufferUnit(addr: at, len: len, pageShift: 12))
                at += len + (rng.next() % 2) << 12  // half of them followed by a gap
            }
            index.fill(handle: Self.handle, units: units, slots: Array(0..<n), coalescing: .multiFolio)
            var probes: [UInt64] = [0, 1, 1 << 47, 1 << 63, UInt64.max, 0x7f00_0000_0000 - 1]
            for u in units { probes += [u.addr - 1, u.addr, u.addr + 1, u.end - 1, u.end, u.end + 1] }
            for address in probes {
                let want = units.firstIndex { $0.addr <= address && address < $0.end } ?? -1
                let got = index.read(as: Self.handle) { $0.find(address) ?? -1 } ?? -2
                #expect(got == want, "\(n) buffers, address \(String(address, radix: 16))")
            }
        }
    }
}
