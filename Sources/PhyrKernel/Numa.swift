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
    package static var onlyNode: Int32? {
        memoryNodes.count == 1 && !KernelFeatures.shared.forced("node-query") ? memoryNodes.first : nil
    }

    /// The node of the CPU this thread runs on now.
    package static func currentNode() throws(Errno) -> Int32 {
        Int32(try shimRetrying { phyr_shim_current_node() })
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
    /// anyway; a batch bounds the arrays libphyr hands it).
    private static func movePages(_ addresses: [UInt64], to node: Int32?, pid: Int32) throws(Errno) -> [Int32] {
        var status = [Int32](repeating: 0, count: addresses.count)
        let batch = 16_384
        var at = 0
        while at < addresses.count {
            let n = min(batch, addresses.count - at)
            var pages = (0..<n).map { UnsafeMutableRawPointer(bitPattern: UInt(addresses[at + $0])) }
            var targets = [Int32](repeating: node ?? 0, count: node == nil ? 0 : n)
            var out = [Int32](repeating: statusUnset, count: n)
            _ = try pages.withUnsafeMutableBufferPointer { p throws(Errno) -> Int in
                try out.withUnsafeMutableBufferPointer { s throws(Errno) -> Int in
                    try targets.withUnsafeMutableBufferPointer { t throws(Errno) -> Int in
                        try shimRetrying {
                            phyr_shim_move_pages(pid, UInt(n), p.baseAddress, node == nil ? nil : t.baseAddress, s.baseAddress)
                        }
                    }
                }
            }
            for i in 0..<n { status[at + i] = out[i] }
            at += n
        }
        return status
    }
}
