// SPDX-License-Identifier: MIT
import CPhyr
import Phyr
import PhyrCore

// The C entry points for pins: validate, convert, call.  Their C signatures
// live in include/phyr.h; @implementation makes the compiler check each one
// against it.

@c @implementation
public func phyr_pin(_ addr: UnsafeRawPointer?, _ len: Int, _ flags: UInt32,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call("phyr_pin") { () throws(PhyrError) -> Int32 in
        try pin(addr, len, flags, node: nil, out)
    }
}

@c @implementation
public func phyr_pin_node(_ addr: UnsafeRawPointer?, _ len: Int, _ flags: UInt32, _ node: Int32,
                          _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call("phyr_pin_node") { () throws(PhyrError) -> Int32 in
        guard node >= PHYR_NODE_LOCAL else { throw PhyrError(.EINVAL, "node \(node) is not a node") }
        return try pin(addr, len, flags, node: node, out)
    }
}

/// phyr_pin and phyr_pin_node: the arguments checked, the range pinned.
private func pin(_ addr: UnsafeRawPointer?, _ len: Int, _ flags: UInt32, node: Int32?,
                 _ out: UnsafeMutablePointer<OpaquePointer?>?) throws(PhyrError) -> Int32 {
    guard let out else { throw PhyrError(.EINVAL, "out is NULL") }
    // size_t arrives as Int: read it back as the unsigned value C passed.
    let length = UInt64(UInt(bitPattern: len))
    guard length > 0 else { throw PhyrError(.EINVAL, "len is 0") }
    guard flags & ~PinFlag.all == 0 else {
        throw PhyrError(.EINVAL, "unknown flag bits \(hex(UInt64(flags & ~PinFlag.all)))")
    }
    let start = UInt64(UInt(bitPattern: addr))
    let (end, overflow) = start.addingReportingOverflow(length)
    guard !overflow else { throw PhyrError(.EINVAL, "\(hex(start)) + \(length) wraps around the address space") }
    let id = try Pins.pin(start..<end, flags: flags, node: node)
    out.pointee = OpaquePointer(bitPattern: PinTable.handle(for: id))
    return 0
}

@c @implementation
public func phyr_split(_ r: OpaquePointer?, _ offset: Int,
                       _ tail: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call("phyr_split") { () throws(PhyrError) -> Int32 in
        guard let tail else { throw PhyrError(.EINVAL, "tail is NULL") }
        let id = try Pins.split(try rangeID(r), at: UInt64(UInt(bitPattern: offset)))
        tail.pointee = OpaquePointer(bitPattern: PinTable.handle(for: id))
        return 0
    }
}

@c @implementation
public func phyr_unpin(_ r: OpaquePointer?) -> Int32 {
    call("phyr_unpin") { () throws(PhyrError) -> Int32 in
        try Pins.unpin(try rangeID(r))
        return 0
    }
}

@c @implementation
public func phyr_range(_ r: OpaquePointer?, _ addr: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ len: UnsafeMutablePointer<Int>?) -> Int32 {
    call("phyr_range") { () throws(PhyrError) -> Int32 in
        let span = try Pins.with(try rangeID(r)) { $0.range }
        addr?.pointee = UnsafeMutableRawPointer(bitPattern: UInt(span.lowerBound))
        len?.pointee = Int(bitPattern: UInt(span.upperBound - span.lowerBound))
        return 0
    }
}

@c @implementation
public func phyr_seg_nodes(_ r: OpaquePointer?, _ nodes: UnsafeMutablePointer<Int32>?, _ nr: UInt32) -> Int32 {
    call("phyr_seg_nodes") { () throws(PhyrError) -> Int32 in
        try copySegments(r, into: nodes, nr, named: "nodes") { $0.node }
    }
}

@c @implementation
public func phyr_segs(_ r: OpaquePointer?, _ segs: UnsafeMutablePointer<phyr_seg>?, _ nr: UInt32) -> Int32 {
    call("phyr_segs") { () throws(PhyrError) -> Int32 in
        try copySegments(r, into: segs, nr, named: "segs") { s in
            phyr_seg(addr: s.addr, len: s.len, phys: s.phys, page_shift: s.pageShift, flags: s.flags.rawValue)
        }
    }
}

/// phyr_segs and phyr_seg_nodes: the first `nr` segments of `r`, each as
/// `convert` makes it, into `out`; the number of segments.
private func copySegments<T>(_ r: OpaquePointer?, into out: UnsafeMutablePointer<T>?, _ nr: UInt32, named: String,
                             _ convert: (Segment) -> T) throws(PhyrError) -> Int32 {
    if out == nil && nr > 0 { throw PhyrError(.EINVAL, "\(named) is NULL but nr is \(nr)") }
    let count = try Pins.with(try rangeID(r)) { p -> Int in
        let all = p.segments
        if let out {
            for (i, s) in all.prefix(Int(nr)).enumerated() { out[i] = convert(s) }
        }
        return all.count
    }
    return Int32(clamping: count)
}
