// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// The kernel's long-term pin, taken the one way an unprivileged process
/// can: by registering the memory as fixed buffers in io_urings of
/// libphyr's own (`pin_user_pages(FOLL_WRITE | FOLL_LONGTERM)`, one
/// reference per folio where a buffer coalesces).
///
/// Holder rings are made on demand with tables of 64, 128, ... slots, up to
/// the kernel's 16384, so their number stays logarithmic in the pins held:
/// every new huge page a buffer brings makes the kernel walk every slot of
/// its ring (the "already charged?" check), so a small table is fast, and a
/// table is never grown (growing it by re-registering would drop the pins
/// for a moment).  A pin's buffers go into the first rings with room.  The
/// holder's lock covers only its list of tables; making a ring, and filling
/// and emptying slots, run outside it.
enum Holder {
    private struct Table {
        /// Never reused in the process, unlike descriptor numbers.
        var number: UInt64
        var table: OwnedTable
    }

    private struct State {
        var tables: [Table] = []
        var nextSerial: UInt64 = 1
        var nextNumber: UInt64 = 1
    }

    /// A forked child holds nothing: the holder rings are the parent's (their
    /// pins stay the parent's), and the fork closed the child's copies.
    private static let state = ProcessLocal(State()) { _ in State() }

    static let firstTableSize = 64

    static func warm() { state.withLock { _ in } }

    /// Where each held buffer lives, for cloning it into another table: the
    /// table and slot, never the descriptor.  Nil where the holder ring was
    /// closed behind libphyr's back: that buffer is registered directly,
    /// rather than a clone failing, which would turn cloning off for the
    /// process.  Each holder ring is looked up and checked once, not once
    /// per buffer.
    static func sources(of held: [HeldBuffer?]) -> [CloneSource?] {
        let tables = state.withLock { s in s.tables }
        var checked: [UInt64: OwnedTable?] = [:]
        return held.map { h in
            guard let h else { return nil }
            let table: OwnedTable?
            if let known = checked[h.ring] {
                table = known
            } else {
                table = tables.first { $0.number == h.ring }.flatMap { $0.table.reachable() ? $0.table : nil }
                checked[h.ring] = .some(table)
            }
            return table.map { CloneSource(table: $0, slot: h.slot) }
        }
    }

    /// Registers `units` in holder rings, all or nothing.  `what` names the
    /// memory for messages.
    static func hold(_ units: [BufferUnit], what: String) throws(PhyrError) -> [HeldBuffer] {
        guard !units.isEmpty else { return [] }
        var placed: [(table: Table, held: [HeldBuffer])] = []
        var total: UInt64 = 0
        func undo() {
            for p in placed { giveBack(p.table, p.held) }
            IoUringCharge.give(total)
        }
        do throws(PhyrError) {
            var rest = units[...]
            while !rest.isEmpty {
                let t = try tableWithRoom(for: min(rest.count, maxBuffersPerTable), what: what)
                let n = min(rest.count, t.table.free)
                guard n > 0, let slots = t.table.takeSlots(n, for: 1) else { continue }  // taken meanwhile
                let chunk = Array(rest.prefix(n))
                rest = rest.dropFirst(n)
                var held: [HeldBuffer] = []
                for (u, slot) in zip(chunk, slots) {
                    let c = t.table.takeCharge(u)
                    held.append(HeldBuffer(serial: nextSerial(), ring: t.number, slot: slot, unit: u,
                                           charge: c.bytes, hugeSpans: c.hugeSpans))
                }
                placed.append((t, held))
            }
            total = placed.reduce(0) { $0 + $1.held.reduce(0) { $0 + $1.charge } }
            do throws(PhyrError) { try IoUringCharge.reserve(total, for: "the kernel's long-term pin of \(what)") } catch {
                total = 0
                throw error
            }
            for (i, p) in placed.enumerated() {
                do throws(OwnedTable.FillFailure) {
                    try p.table.table.fill(p.held.map { BufferSpan(addr: $0.unit.addr, len: $0.unit.len) },
                                           into: p.held.map { $0.slot })
                } catch {
                    // The tables before this one are full: empty them too.
                    for q in placed[..<i] { q.table.table.emptyUndoing(q.held.map { $0.slot }) }
                    throw refusal(error.errno, p.held[min(error.index, p.held.count - 1)], what: what)
                }
            }
        } catch {
            undo()
            throw error
        }
        return placed.flatMap { $0.held }
    }

    /// Empties the slots of buffers no range holds any more: the kernel drops
    /// its pins (after any I/O in flight on them, and not before a clone of
    /// them in a caller's ring is gone too).
    static func release(_ buffers: [HeldBuffer]) {
        guard !buffers.isEmpty else { return }
        let tables = state.withLock { $0.tables }
        var byRing: [UInt64: [HeldBuffer]] = [:]
        for b in buffers { byRing[b.ring, default: []].append(b) }
        for (ring, group) in byRing {
            guard let t = tables.first(where: { $0.number == ring }) else {
                IoUringCharge.give(group.reduce(0) { $0 + $1.charge })  // a ring gone behind libphyr's back
                continue
            }
            var refused: [Int] = []
            try? t.table.empty(group.map { $0.slot }, kept: &refused)
            let kept = Set(refused)
            // A slot the kernel would not empty stays taken and charged:
            // never reused under a pin the kernel keeps.
            let emptied = group.filter { !kept.contains($0.slot) }
            giveBack(t, emptied)
            IoUringCharge.give(emptied.reduce(0) { $0 + $1.charge })
        }
    }

    private static func giveBack(_ t: Table, _ held: [HeldBuffer]) {
        t.table.releaseSlots(held.map { $0.slot })
        for h in held { t.table.releaseCharge(h.hugeSpans) }
    }

    private static func nextSerial() -> UInt64 {
        state.withLock { s in
            defer { s.nextSerial += 1 }
            return s.nextSerial
        }
    }

    /// The first table with room for `count` more (or any room at all when
    /// none has that much), or a new one sized for them.  A ring a program
    /// closed behind libphyr's back is forgotten: its slots are never used
    /// again.  The new ring is made outside the holder's lock.
    private static func tableWithRoom(for count: Int, what: String) throws(PhyrError) -> Table {
        let tables = state.withLock { $0.tables }
        for t in tables where !t.table.reachable() {
            state.withLock { s in s.tables.removeAll { $0.number == t.number } }
        }
        if let t = tables.first(where: { $0.table.free >= count && $0.table.reachable() }) { return t }
        let size = min(maxBuffersPerTable, max(firstTableSize << min(tables.count, 8), count))
        let file: RingFile
        do { file = try RingFile.makeOwn() } catch {
            throw IoUringCharge.unavailable(error, doing: "PHYR_PIN_LONGTERM of \(what): making an io_uring to hold the pin")
        }
        let table = OwnedTable(file: file)
        do throws(Errno) { try table.create(size: size, initial: []) } catch {
            file.close()
            throw IoUringCharge.unavailable(error, doing: "PHYR_PIN_LONGTERM of \(what): making a buffer table of "
                                            + "\(size) slots to hold the pin")
        }
        return state.withLock { s in
            let t = Table(number: s.nextNumber, table: table)
            s.nextNumber += 1
            s.tables.append(t)
            return t
        }
    }

    private static func refusal(_ e: Errno, _ b: HeldBuffer, what: String) -> PhyrError {
        let piece = spanText(b.unit.addr..<b.unit.end)
        switch e {
        case .ENOMEM:
            return IoUringCharge.outOfLockedMemory("to pin \(piece) for PHYR_PIN_LONGTERM of \(what)", charge: b.charge)
        case .EOPNOTSUPP:
            return PhyrError(.EOPNOTSUPP, "PHYR_PIN_LONGTERM of \(what): this kernel cannot long-term pin \(piece) "
                             + "(its io_uring pins only anonymous, shmem and hugetlb memory, no other file-backed memory)")
        case .EPERM, .ENOSYS, .EACCES:
            return IoUringCharge.unavailable(e, doing: "PHYR_PIN_LONGTERM of \(what)")
        case .EBADF:
            return PhyrError(.EBADF, "PHYR_PIN_LONGTERM of \(what): one of libphyr's holder io_urings was "
                             + "closed behind its back; the pins it held are gone (try again: a new one is made)")
        default:
            return PhyrError(e, "PHYR_PIN_LONGTERM of \(what): the kernel refused to pin \(piece): \(e)")
        }
    }
}
