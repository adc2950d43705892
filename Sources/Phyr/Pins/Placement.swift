// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// NUMA: the node of every folio a pin holds, and moving a span's pages to a
/// node before it is pinned (phyr_pin_node).
enum Placement {
    /// `PHYR_NODE_LOCAL`: the node of the calling CPU.
    static let localNode: Int32 = -1

    /// `runs` with the node of each folio (`Numa.located`).  Where the
    /// kernel will not say (move_pages denied), nodes stay unknown: a pin
    /// does not fail for what it only reports.
    static func withNodes(_ runs: [BackingRun]) -> [BackingRun] {
        (try? Numa.located(runs)) ?? runs
    }

    /// The node `phyr_pin_node` was asked for, checked: one that exists and
    /// has memory, or the calling CPU's (which must have memory too).
    static func target(_ node: Int32) throws(PhyrError) -> Int32 {
        let nodes = Numa.memoryNodes
        let listed = "nodes with memory: " + nodes.map { String($0) }.joined(separator: ",")
        if node == localNode {
            let here: Int32
            do { here = try Numa.currentNode() } catch {
                throw PhyrError(error, "PHYR_NODE_LOCAL: the calling CPU's node is unknown (getcpu: \(error))")
            }
            guard nodes.contains(here) else {
                throw PhyrError(.EINVAL, "PHYR_NODE_LOCAL: the calling CPU's node \(here) has no memory (\(listed))")
            }
            return here
        }
        guard nodes.contains(node) else {
            throw PhyrError(.EINVAL, "node \(node) does not exist or has no memory (\(listed))")
        }
        return node
    }

    /// Moves the folios of `runs` that are not on `node` there and returns
    /// the span's runs as they are then, with their nodes.  The kernel's
    /// answer is read back rather than trusted: move_pages leaves the status
    /// of pages it gave up on unset, reports -EBUSY for the other 4 KiB
    /// pages of a large folio it is moving already, and a huge page the node
    /// had no huge page for arrives as 4 KiB pages (moved in a second round).
    /// A folio still elsewhere then fails the pin, named with the kernel's
    /// last word about it.
    static func move(_ runs: [BackingRun], to node: Int32, range: Range<UInt64>,
                     rescan: () throws(PhyrError) -> [BackingRun]) throws(PhyrError) -> [BackingRun] {
        let hugeKnown = PageScanner.tellsHugePagesApart
        var now = try asked(runs, range: range)
        var moved: (addresses: [UInt64], status: [Int32]) = ([], [])
        for _ in 0..<2 {
            let misplaced = Nodes.misplaced(now, from: node, hugeKnown: hugeKnown)
            guard !misplaced.isEmpty else { return now }
            do { moved = (misplaced, try Numa.move(misplaced, to: node)) } catch {
                throw refusal(of: error, node: node, range: range)
            }
            now = try asked(try rescan(), range: range)
        }
        guard let stuck = Nodes.misplaced(now, from: node, hugeKnown: hugeKnown).first else { return now }
        let on = now.first { $0.start <= stuck && stuck < $0.end }?.node ?? nodeUnknown
        // The kernel's last word about it, looked up only for the refusal.
        let said = moved.addresses.firstIndex(of: stuck).map { moved.status[$0] } ?? Numa.statusUnset
        throw refusal(said, at: stuck, on: on, node: node, range: range)
    }

    /// A long-term pin may move pages itself (out of ZONE_MOVABLE or CMA,
    /// to whichever node has room): `runs`, read after it, must all be on
    /// `node`.
    static func check(_ runs: [BackingRun], on node: Int32, range: Range<UInt64>) throws(PhyrError) {
        guard let moved = runs.first(where: { $0.node != nodeUnknown && $0.node != node }) else { return }
        throw PhyrError(.EBUSY, "the kernel moved the page at \(hex(moved.start)) to node \(moved.node) as it "
                        + "long-term pinned \(spanText(range)) (out of movable memory; node \(node) had no room "
                        + "outside it): nothing was pinned")
    }

    private static func asked(_ runs: [BackingRun], range: Range<UInt64>) throws(PhyrError) -> [BackingRun] {
        do { return try Numa.located(runs) } catch {
            throw PhyrError(error, "asking the kernel where \(spanText(range)) is (move_pages): \(error)")
        }
    }

    /// move_pages refused the whole call.
    private static func refusal(of error: Errno, node: Int32, range: Range<UInt64>) -> PhyrError {
        switch error {
        case .ENOMEM:
            return PhyrError(.ENOMEM, "node \(node) has no room for the pages of \(spanText(range)) (move_pages: \(error))")
        case .EACCES:
            return PhyrError(.EINVAL, "node \(node) is not one this process may use (its cpuset's mems_allowed); "
                             + "nothing moved")
        case .ENODEV:
            return PhyrError(.EINVAL, "node \(node) has no memory (went offline?); nothing moved")
        default:
            return PhyrError(error, "moving \(spanText(range)) to node \(node): move_pages failed (\(error))")
        }
    }

    /// A folio still off `node` after the rounds: `status`, the kernel's last
    /// word about it; `on`, where it is now (`nodeUnknown`: the kernel does
    /// not say).
    private static func refusal(_ status: Int32, at address: UInt64, on: Int32, node: Int32,
                                range: Range<UInt64>) -> PhyrError {
        let page = hex(address)
        let whereNow = on >= 0 ? "it stayed on node \(on)" : "the kernel does not say where it is"
        switch status == Numa.statusUnset || status >= 0 ? nil : Errno(code: -status) {
        case .ENOMEM?:
            return PhyrError(.ENOMEM, "node \(node) has no room for the page at \(page) (moving \(spanText(range)))")
        case .EACCES?:
            return PhyrError(.EBUSY, "the page at \(page) cannot move to node \(node): another process maps it too "
                             + "(a fork child, until one of them writes it); nothing was pinned")
        case .EFAULT?:
            return PhyrError(.EBUSY, "the page at \(page) cannot move to node \(node): its mapping's memory cannot "
                             + "migrate (\(whereNow)); nothing was pinned")
        default:
            return PhyrError(.EBUSY, "the page at \(page) cannot move to node \(node) (\(whereNow)): it is pinned "
                             + "(registered with io_uring, say, or held by a device) or in use by the kernel; "
                             + "nothing was pinned")
        }
    }
}
