// SPDX-License-Identifier: MIT
import PhyrCore
import PhyrKernel

/// NUMA: the node of every folio a pin holds, and moving a span's pages to a
/// node before it is pinned (phyr_pin_node).
enum Placement {
    /// `PHYR_NODE_LOCAL`: the node of the calling CPU.
    static let localNode: Int32 = -1

    /// `runs` with the node of each folio: one query per folio (never per
    /// 4 KiB page of a huge one), none at all on a machine with one node.
    /// Where the kernel will not say (move_pages denied), nodes stay unknown:
    /// a pin does not fail for what it only reports.
    static func withNodes(_ runs: [BackingRun]) -> [BackingRun] {
        if let only = Numa.onlyNode { return Nodes.placed(runs, on: only) }
        let addresses = Nodes.folioAddresses(runs)
        guard !addresses.isEmpty, let nodes = try? Numa.nodes(of: addresses) else { return runs }
        return Nodes.placed(runs, nodes: nodes)
    }

    /// The node `phyr_pin_node` was asked for, checked: one that exists and
    /// has memory, or the calling CPU's.
    static func target(_ node: Int32) throws(PhyrError) -> Int32 {
        let nodes = Numa.memoryNodes
        if node == localNode {
            do { return try Numa.currentNode() } catch {
                throw PhyrError(error, "PHYR_NODE_LOCAL: the calling CPU's node is unknown (getcpu: \(error))")
            }
        }
        guard nodes.contains(node) else {
            throw PhyrError(.EINVAL, "node \(node) does not exist or has no memory (nodes with memory: "
                            + nodes.map { String($0) }.joined(separator: ",") + ")")
        }
        return node
    }

    /// Moves the folios of `runs` that are not on `node` there and returns
    /// the span's runs as they are then, with their nodes.  The kernel's
    /// answer is read back rather than trusted: move_pages may move a huge
    /// page as 4 KiB pages (the node had no huge page free) and leaves the
    /// status of pages it gave up on unset.  A folio that cannot move fails
    /// the pin, naming it.
    static func move(_ runs: [BackingRun], to node: Int32, range: Range<UInt64>,
                     rescan: () throws(PhyrError) -> [BackingRun]) throws(PhyrError) -> [BackingRun] {
        var located = try located(runs, range: range)
        // A second round for the pieces of huge pages split on the way.
        for _ in 0..<2 {
            let misplaced = Nodes.misplaced(located, from: node)
            guard !misplaced.isEmpty else { return located }
            let status: [Int32]
            do { status = try Numa.move(misplaced, to: node) } catch where error == .ENOMEM {
                throw PhyrError(.ENOMEM, "node \(node) has no room for the pages of \(spanText(range)) "
                                + "(move_pages: \(error))")
            } catch {
                throw PhyrError(error == .ENOSYS ? .EPERM : error,
                                "moving \(spanText(range)) to node \(node): move_pages failed (\(error))")
            }
            if let i = status.firstIndex(where: { $0 < 0 && $0 != Numa.statusUnset }) {
                throw refusal(status[i], at: misplaced[i], node: node, range: range)
            }
            located = try self.located(try rescan(), range: range)
        }
        guard let stuck = Nodes.misplaced(located, from: node).first else { return located }
        let now = located.first { $0.start <= stuck && stuck < $0.end }?.node ?? nodeUnknown
        throw refusal(now, at: stuck, node: node, range: range)
    }

    /// The nodes of `runs`, asked even on one node: placement must know.
    private static func located(_ runs: [BackingRun], range: Range<UInt64>) throws(PhyrError) -> [BackingRun] {
        if Numa.memoryNodes.count == 1, let only = Numa.memoryNodes.first { return Nodes.placed(runs, on: only) }
        let addresses = Nodes.folioAddresses(runs)
        do { return Nodes.placed(runs, nodes: try Numa.nodes(of: addresses)) } catch {
            throw PhyrError(error, "asking the kernel where \(spanText(range)) is (move_pages): \(error)")
        }
    }

    private static func refusal(_ status: Int32, at address: UInt64, node: Int32, range: Range<UInt64>) -> PhyrError {
        let page = hex(address)
        switch Errno(code: -status) {
        case .ENOMEM:
            return PhyrError(.ENOMEM, "node \(node) has no room for the page at \(page) (moving \(spanText(range)))")
        case .EBUSY, .EAGAIN, .EIO:
            return PhyrError(.EBUSY, "the page at \(page) cannot move to node \(node): it is pinned (registered with "
                             + "io_uring, say, or held by a device) or in use by the kernel; nothing was pinned")
        case .EACCES:
            return PhyrError(.EBUSY, "the page at \(page) cannot move to node \(node): another process maps it too; "
                             + "nothing was pinned")
        case .EFAULT, .ENOENT:
            return PhyrError(.EFAULT, "the page at \(page) is gone (unmapped while it was being moved to node \(node))")
        default:
            guard status < 0 else {
                return PhyrError(.EBUSY, "the page at \(page) stayed on node \(status) (moving it to node \(node)): "
                                 + "it is pinned (registered with io_uring, say, or held by a device) or in use "
                                 + "by the kernel; nothing was pinned")
            }
            let e = Errno(code: -status)
            return PhyrError(e, "the page at \(page) did not move to node \(node): \(e)")
        }
    }
}
