// SPDX-License-Identifier: MIT
import CPhyr
import PhyrCore

/// The machine's NUMA nodes and the kernel's answers about them: which
/// nodes have memory (sysfs), which node a CPU is on (getcpu), where pages
/// are and moving them (move_pages).
package enum Numa {
    /// The nodes with memory, read once: [0] on a kernel without NUMA.
    /// `PHYR_FORCE_FALLBACK=node-query` asks the kernel about every folio
    /// even on one node (for tests and benchmarks).
    package static let memoryNodes: [Int32] = {
        guard let bytes = try? readFile("/sys/devices/system/node/has_memory"),
              let nodes = Nodes.parseList(String(decoding: bytes, as: UTF8.self)), !nodes.isEmpty else { return [0] }
        return nodes
    }()

    /// The one node with memory, where there is just one and nothing forces
    /// asking: every page is there, and no query is needed.
    package static let onlyNode: Int32? =
        memoryNodes.count == 1 && !KernelFeatures.shared.nodeQueryForced ? memoryNodes.first : nil

    /// The node of the CPU this thread runs on now.
    package static func currentNode() throws(Errno) -> Int32 {
        Int32(try shimRetrying { phyr_shim_current_node() })
    }

    /// `runs` of process `pid` (nil: this one) with the node of each folio:
    /// one question per folio -- per 4 KiB page where huge pages are only a
    /// guess (pagemap without PFNs) -- and none on a machine with one node.
    package static func located(_ runs: [BackingRun], pid: Int32? = nil) throws(Errno) -> [BackingRun] {
        if let only = onlyNode { return Nodes.placed(runs, on: only) }
        let hugeKnown = PageScanner.tellsHugePagesApart
        let addresses = Nodes.folioAddresses(runs, hugeKnown: hugeKnown)
        guard !addresses.isEmpty else { return runs }
        return Nodes.placed(runs, nodes: try nodes(of: addresses, pid: pid), hugeKnown: hugeKnown)
    }

    /// The node of each of `addresses` in process `pid` (nil: this one);
    /// negative where the kernel has no page there (-errno).
    package static func nodes(of addresses: [UInt64], pid: Int32? = nil) throws(Errno) -> [Int32] {
        try movePages(addresses, to: nil, pid: pid ?? 0)
    }

    /// A status move_pages left as it was: the kernel gave up on the page
    /// before it came to say anything about it.
    package static let statusUnset = Int32.min

    /// Moves the pages at `addresses` of this process to `node` (those only
    /// it maps); each one's node afterwards, -errno where it did not move,
    /// or `statusUnset`.
    package static func move(_ addresses: [UInt64], to node: Int32) throws(Errno) -> [Int32] {
        try movePages(addresses, to: node, pid: 0)
    }

    /// /proc/PID/numa_maps: each VMA's resident bytes per node, by its
    /// start (the kernel's own walk of the page tables, folio by folio).
    package static func residentBytes(in files: ProcFiles) throws(Errno) -> [UInt64: [NodeBytes]] {
        var out: [UInt64: [NodeBytes]] = [:]
        try forEachLine(files.path("numa_maps")) { line in
            if let (start, nodes) = Nodes.numaMapsLine(line) { out[start] = nodes }
            return true
        }
        return out
    }

    /// move_pages in batches (the kernel walks them in chunks of its own
    /// anyway; a batch bounds what one call holds the mmap lock for).
    private static func movePages(_ addresses: [UInt64], to node: Int32?, pid: Int32) throws(Errno) -> [Int32] {
        var status = [Int32](repeating: statusUnset, count: addresses.count)
        guard !addresses.isEmpty else { return status }
        var pages = addresses.map { UnsafeMutableRawPointer(bitPattern: UInt($0)) }
        let batch = 16_384
        var targets = [Int32](repeating: node ?? 0, count: node == nil ? 0 : min(batch, addresses.count))
        try pages.withUnsafeMutableBufferPointer { p throws(Errno) in
            try status.withUnsafeMutableBufferPointer { s throws(Errno) in
                try targets.withUnsafeMutableBufferPointer { t throws(Errno) in
                    var at = 0
                    while at < p.count {
                        let n = min(batch, p.count - at)
                        _ = try shimRetrying {
                            phyr_shim_move_pages(pid, UInt(n), p.baseAddress.map { $0 + at },
                                                 node == nil ? nil : t.baseAddress, s.baseAddress.map { $0 + at })
                        }
                        at += n
                    }
                }
            }
        }
        return status
    }
}
