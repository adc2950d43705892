// SPDX-License-Identifier: MIT
import PhyrCore

/// The report as a table for people.
enum TableOutput {
    static func render(_ r: ProcessReport, rings: Bool) -> String {
        var out = ""
        let s = r.settings
        out += "process \(r.pid) (\(printable(r.command))): THP \(modeText(s.mode)), shmem_enabled \(s.shmem)"
        out += s.processDisabled ? ", THP disabled for the process (prctl)\n\n" : "\n\n"
        let header = [pad("start", 14), pad("end", 14), padL("size", 10), padL("THP", 10), padL("hugetlb", 10),
                      padL("4 KiB", 10), padL("no folio", 10), pad("locked", 6), pad("nodes", 14), "name"]
        out += header.joined(separator: " ") + "\n"
        var total = (size: UInt64(0), huge: UInt64(0), hugetlb: UInt64(0), base: UInt64(0), nofolio: UInt64(0),
                     locked: UInt64(0))
        for m in r.mappings {
            let size = m.end - m.start
            total.size += size
            total.huge += m.hugeBytes
            total.hugetlb += m.hugetlbBytes
            total.base += m.baseBytes
            total.nofolio += m.noFolioBytes
            if m.locked { total.locked += size }
            let row = [pad(hex(m.start), 14), pad(hex(m.end), 14), padL(bytes(size), 10), padL(bytes(m.hugeBytes), 10),
                       padL(bytes(m.hugetlbBytes), 10), padL(bytes(m.baseBytes), 10), padL(bytes(m.noFolioBytes), 10),
                       pad(m.locked ? "yes" : "no", 6), pad(nodesText(m.nodes), 14),
                       m.name.isEmpty ? "[anon]" : printable(m.name)]
            out += row.joined(separator: " ") + "\n"
            if let why = m.whyNotHuge { out += "    not huge: \(why)\n" }
        }
        out += "\(r.mappings.count) mappings: \(bytes(total.size)); THP \(bytes(total.huge)), hugetlb "
            + "\(bytes(total.hugetlb)), 4 KiB pages \(bytes(total.base)), no folio \(bytes(total.nofolio)); "
            + "locked mappings \(bytes(total.locked))\n"
        let perNode = Nodes.total(r.mappings.map { $0.nodes })
        if !perNode.isEmpty {
            out += "resident per node: " + perNode.map { "node \($0.node) \(bytes($0.bytes))" }.joined(separator: ", ") + "\n"
        }
        guard rings else { return out }
        if r.rings.isEmpty && r.unlistedRings.isEmpty { out += "\nno io_uring\n" }
        var entries: UInt64 = 0, charge: UInt64 = 0, count = 0
        for ring in r.rings {
            guard let bufs = ring.buffers else {
                out += "\nio_uring \(fdText(ring.fds)): the kernel did not list its buffers (the ring stayed busy)\n"
                continue
            }
            let e = bufs.reduce(0) { $0 + $1.kernelEntries }, c = bufs.reduce(0) { $0 + $1.lockCharge }
            entries += e
            charge += c
            count += bufs.count
            out += "\nio_uring \(fdText(ring.fds)): \(bufs.count) registered buffers, \(e) kernel entries, lock charge "
                + "\(bytes(c))\n"
            guard !bufs.isEmpty else { continue }
            out += [padL("index", 6), pad("address", 14), padL("length", 10), pad("backing", 26), pad("coalesced", 9),
                    padL("entries", 8), padL("charge", 10), "nodes"].joined(separator: " ") + "\n"
            for b in bufs {
                out += [padL("\(b.index)", 6), pad(hex(b.addr), 14), padL(bytes(b.len), 10), pad(b.backing, 26),
                        pad(b.coalesced ? "yes" : "no", 9), padL("\(b.kernelEntries)", 8), padL(bytes(b.lockCharge), 10),
                        b.nodes.isEmpty ? "?" : b.nodes.map(String.init).joined(separator: ",")]
                    .joined(separator: " ") + "\n"
                if let advice = b.advice { out += "    \(advice)\n" }
            }
        }
        for inode in r.unlistedRings {
            out += "\nio_uring inode \(inode): mapped, but no descriptor of the process names it (closed after "
                + "io_uring_register_ring_fd?): its buffers cannot be listed\n"
        }
        if r.rings.count > 1 {
            out += "\n\(r.rings.count) io_urings: \(count) buffers, \(entries) kernel entries, lock charge \(bytes(charge))\n"
        }
        if let pin = r.vmPin, !r.rings.isEmpty || pin > 0 {
            out += "VmPin (the kernel's own count of what it charged for the process's buffers): \(bytes(pin))\n"
        }
        return out
    }

    /// "0", "0:12M 1:4M" (bytes in the largest whole unit), "-" for none.
    static func nodesText(_ nodes: [NodeBytes]) -> String {
        guard nodes.count > 1 else { return nodes.first.map { "\($0.node)" } ?? "-" }
        return nodes.map { "\($0.node):" + short($0.bytes) }.joined(separator: " ")
    }

    /// "12M", "1.5G", "8K": a table cell's bytes.
    static func short(_ n: UInt64) -> String {
        let t = Inspection.byteText(n)
        guard let space = t.firstIndex(of: " ") else { return t }
        let unit = t[t.index(after: space)...]
        return String(t[..<space]) + (unit == "B" ? "" : String(unit.prefix(1)))
    }

    /// "fd 5", or "fds 5, 6 (one ring)".
    static func fdText(_ fds: [Int32]) -> String {
        fds.count == 1 ? "fd \(fds[0])" : "fds " + fds.map(String.init).joined(separator: ", ") + " (one ring)"
    }

    /// Text from the process (names, comm) as the terminal should see it:
    /// control characters escaped, never sent.
    static func printable(_ s: String) -> String {
        var o = ""
        for u in s.unicodeScalars {
            if u.value < 0x20 || (u.value >= 0x7f && u.value < 0xa0) {
                let h = String(u.value, radix: 16)
                o += "\\x" + (h.count < 2 ? "0" + h : h)
            } else {
                o.unicodeScalars.append(u)
            }
        }
        return o
    }

    static func modeText(_ m: THPMode) -> String {
        switch m {
        case .always: return "always"
        case .madvise: return "madvise"
        case .never: return "never"
        }
    }

    static func bytes(_ n: UInt64) -> String { n == 0 ? "0" : Inspection.byteText(n) }
    static func hex(_ n: UInt64) -> String { Inspection.hexText(n) }
    static func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
    static func padL(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
}

/// The report as one JSON object (integers for addresses and sizes).
enum JSONOutput {
    static func render(_ r: ProcessReport) -> String {
        var o = "{\"pid\":\(r.pid),\"command\":\(string(r.command)),"
        o += "\"thp\":{\"enabled\":\(string(TableOutput.modeText(r.settings.mode))),"
        o += "\"shmem_enabled\":\(string(r.settings.shmem)),\"process_disabled\":\(r.settings.processDisabled)},"
        o += "\"vm_pin\":\(r.vmPin.map(String.init) ?? "null"),"
        o += "\"unlisted_rings\":[\(r.unlistedRings.map(String.init).joined(separator: ","))],"
        o += "\"nodes\":\(nodes(Nodes.total(r.mappings.map { $0.nodes }))),"
        o += "\"mappings\":["
        o += r.mappings.map { m in
            "{\"start\":\(m.start),\"end\":\(m.end),\"name\":\(string(m.name)),\"huge_bytes\":\(m.hugeBytes),"
                + "\"hugetlb_bytes\":\(m.hugetlbBytes),\"base_bytes\":\(m.baseBytes),\"nofolio_bytes\":\(m.noFolioBytes),"
                + "\"locked\":\(m.locked),\"thp_eligible\":\(m.thpEligible),\"why_not_huge\":\(m.whyNotHuge.map(string) ?? "null"),"
                + "\"nodes\":\(nodes(m.nodes))}"
        }.joined(separator: ",")
        o += "],\"io_uring\":["
        o += r.rings.map { ring in
            var s = "{\"fd\":\(ring.fd),\"fds\":[\(ring.fds.map(String.init).joined(separator: ","))],\"listed\":\(ring.buffers != nil),\"buffers\":["
            s += (ring.buffers ?? []).map { b in
                "{\"index\":\(b.index),\"addr\":\(b.addr),\"len\":\(b.len),\"backing\":\(string(b.backing)),"
                    + "\"coalesced\":\(b.coalesced),\"kernel_entries\":\(b.kernelEntries),\"lock_charge\":\(b.lockCharge),"
                    + "\"advice\":\(b.advice.map(string) ?? "null"),\"nodes\":[\(b.nodes.map(String.init).joined(separator: ","))]}"
            }.joined(separator: ",")
            return s + "]}"
        }.joined(separator: ",")
        return o + "]}\n"
    }

    /// {"0": bytes, "1": bytes}
    static func nodes(_ list: [NodeBytes]) -> String {
        "{" + list.map { "\"\($0.node)\":\($0.bytes)" }.joined(separator: ",") + "}"
    }

    static func string(_ s: String) -> String {
        var o = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": o += "\\\""
            case "\\": o += "\\\\"
            case "\n": o += "\\n"
            case "\t": o += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    o += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    o.unicodeScalars.append(u)
                }
            }
        }
        return o + "\""
    }
}
