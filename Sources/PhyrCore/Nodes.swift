// SPDX-License-Identifier: MIT

/// NUMA nodes, as the pure core sees them: the node list sysfs writes, the
/// one address per folio a node query asks about, and backing runs cut where
/// the node changes.
package enum Nodes {
    /// A sysfs node list ("0", "0-1", "0,2-3\n"); nil when it is not one.
    package static func parseList(_ text: String) -> [Int32]? {
        var nodes: [Int32] = []
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == " " }).joined()
        guard !trimmed.isEmpty else { return [] }
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let ends = part.split(separator: "-", omittingEmptySubsequences: false)
            guard ends.count == 1 || ends.count == 2, let lo = Int32(ends[0]), let hi = Int32(ends[ends.count - 1]),
                  lo >= 0, lo <= hi, hi - lo < 4096 else { return nil }
            nodes.append(contentsOf: lo...hi)
        }
        return nodes
    }

    /// One address per folio of `runs` that has memory -- the head of each
    /// huge page, every 4 KiB page elsewhere -- in order: a node query asks
    /// about each, never about a 4 KiB page inside a huge one.  A huge
    /// page's head lies in its mapping even where the range starts past it
    /// (a PMD or a hugetlb page maps a whole aligned extent), and a move
    /// must name the head: older kernels refuse a hugetlb tail page.  With
    /// `hugeKnown` false (pagemap without PFNs: huge pages are a guess),
    /// transparent huge pages are asked about page by page.
    package static func folioAddresses(_ runs: [BackingRun], hugeKnown: Bool = true) -> [UInt64] {
        var out: [UInt64] = []
        for r in runs where hasMemory(r) {
            let step = folioSize(r, hugeKnown: hugeKnown)
            var a = alignDown(r.start, step)
            while a < r.end {
                out.append(a)
                a += step
            }
        }
        return out
    }

    /// `runs` with their nodes: `nodes[i]` is the node of the folio at
    /// `folioAddresses(runs, hugeKnown:)[i]` (negative: the kernel could not
    /// say).  A run is cut where the node changes; memory with no folio
    /// keeps `nodeUnknown`.
    package static func placed(_ runs: [BackingRun], nodes: [Int32], hugeKnown: Bool = true) -> [BackingRun] {
        var out: [BackingRun] = []
        var i = 0
        for r in runs {
            guard hasMemory(r) else {
                out.append(r)
                continue
            }
            let step = folioSize(r, hugeKnown: hugeKnown)
            var a = alignDown(r.start, step)
            while a < r.end {
                let lo = max(a, r.start), hi = min(a + step, r.end)
                let node = i < nodes.count && nodes[i] >= 0 ? nodes[i] : nodeUnknown
                i += 1
                var piece = r
                piece.start = lo
                piece.end = hi
                if r.phys != physUnknown { piece.phys = r.phys + (lo - r.start) }
                piece.node = node
                out.appendMerging(piece)
                a += step
            }
        }
        return out
    }

    /// `runs` all on `node`: a machine with one node needs no query.
    package static func placed(_ runs: [BackingRun], on node: Int32) -> [BackingRun] {
        runs.map { r in
            var r = r
            r.node = hasMemory(r) ? node : nodeUnknown
            return r
        }
    }

    /// The folios of `runs` that are not on `node`, one address each (as
    /// `folioAddresses` gives them): what placing a range on `node` moves.
    package static func misplaced(_ runs: [BackingRun], from node: Int32, hugeKnown: Bool = true) -> [UInt64] {
        folioAddresses(runs.filter { $0.node != node }, hugeKnown: hugeKnown)
    }

    /// The size of the folios of `r` as far as a node query can rely on it.
    private static func folioSize(_ r: BackingRun, hugeKnown: Bool) -> UInt64 {
        hugeKnown || r.flags.contains(.hugetlb) ? r.pageSize : basePageSize
    }

    private static func hasMemory(_ r: BackingRun) -> Bool {
        r.present && !r.zeroPage && !r.flags.contains(.noFolio)
    }

    /// One line of /proc/PID/numa_maps ("7f00000000 default anon=512
    /// dirty=512 N0=256 N1=256 kernelpagesize_kB=4"): the VMA's start and
    /// its bytes on each node, by node; nil for a line that is not one.
    /// The counts are in pages of kernelpagesize_kB (a THP VMA's in 4 KiB
    /// pages, a hugetlb VMA's in huge pages).
    package static func numaMapsLine(_ line: ArraySlice<UInt8>) -> (start: UInt64, nodes: [NodeBytes])? {
        let fields = line.split(separator: UInt8(ascii: " "))
        guard let first = fields.first, let start = UInt64(String(decoding: first, as: UTF8.self), radix: 16) else {
            return nil
        }
        var pages: [(node: Int32, count: UInt64)] = []
        var pageKiB: UInt64 = 4
        for f in fields.dropFirst() {
            guard let eq = f.firstIndex(of: UInt8(ascii: "=")) else { continue }
            let key = String(decoding: f[f.startIndex..<eq], as: UTF8.self)
            guard let value = UInt64(String(decoding: f[(eq + 1)...], as: UTF8.self)) else { continue }
            if key == "kernelpagesize_kB" {
                pageKiB = value
            } else if key.hasPrefix("N"), let node = Int32(key.dropFirst()), node >= 0 {
                pages.append((node, value))
            }
        }
        let nodes = pages.map { p in
            NodeBytes(node: p.node, bytes: p.count.multipliedReportingOverflow(by: pageKiB << 10).partialValue)
        }
        return (start, nodes.sorted { $0.node < $1.node })
    }

    /// The per-node totals of `lists`, by node.
    package static func total(_ lists: [[NodeBytes]]) -> [NodeBytes] {
        var sums: [Int32: UInt64] = [:]
        for list in lists {
            for n in list { sums[n.node, default: 0] &+= n.bytes }
        }
        return sums.map { NodeBytes(node: $0.key, bytes: $0.value) }.sorted { $0.node < $1.node }
    }

    /// The distinct nodes of `runs` that have memory, ascending.
    package static func of(_ runs: [BackingRun]) -> [Int32] {
        Set(runs.filter { hasMemory($0) && $0.node != nodeUnknown }.map { $0.node }).sorted()
    }
}

/// Bytes of memory on one NUMA node.
package struct NodeBytes: Equatable, Sendable {
    package var node: Int32
    package var bytes: UInt64
    package init(node: Int32, bytes: UInt64) {
        self.node = node
        self.bytes = bytes
    }
}
