// SPDX-License-Identifier: MIT
import CPhyr
import Phyr
import PhyrCore

// The C entry points for io_uring buffers: validate, convert, call.

@c @implementation
public func ring_register_ranges(_ ring: OpaquePointer?, _ ranges: UnsafePointer<OpaquePointer?>?, _ nr: UInt32,
                                 _ flags: UInt32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    call("ring_register_ranges") { () throws(PhyrError) -> Int32 in
        guard let ring else { throw PhyrError(.EINVAL, "ring is NULL") }
        guard let out else { throw PhyrError(.EINVAL, "out is NULL") }
        guard let ranges, nr > 0 else { throw PhyrError(.EINVAL, "no ranges (ranges NULL or nr 0)") }
        guard flags == 0 else { throw PhyrError(.EINVAL, "flags must be 0, not \(hex(UInt64(flags)))") }
        var ids: [UInt64] = []
        ids.reserveCapacity(Int(nr))
        for i in 0..<Int(nr) {
            do throws(PhyrError) { ids.append(try rangeID(ranges[i], "ranges[\(i)]: the range")) } catch {
                throw ranges[i] == nil ? error : error.prefixed("ranges[\(i)]")
            }
        }
        let handle = try Rings.register(ringFd: phyr_shim_ring_fd(ring), ranges: ids)
        out.pointee = OpaquePointer(bitPattern: handle)
        return 0
    }
}

@c @implementation
public func ring_reg_bufs(_ reg: OpaquePointer?, _ bufs: UnsafeMutablePointer<ring_buf>?, _ nr: UInt32) -> Int32 {
    call("ring_reg_bufs") { () throws(PhyrError) -> Int32 in
        if bufs == nil && nr > 0 { throw PhyrError(.EINVAL, "bufs is NULL but nr is \(nr)") }
        let handle = try registrationHandle(reg)
        // Copied out only once the read is known to be consistent.
        let snapshot = Rings.read(handle) { index -> (Int, [ring_buf]) in
            let n = index.count
            let copies = (0..<min(n, Int(nr))).map { i in
                ring_buf(addr: index.start(i), len: index.end(i) &- index.start(i), index: index.slot(i),
                         page_shift: index.pageShift(i), flags: index.flags(i), resv: 0)
            }
            return (n, copies)
        }
        guard let (count, copies) = snapshot else { throw Rings.notLive(handle) }
        if let bufs {
            for (i, b) in copies.enumerated() { bufs[i] = b }
        }
        return Int32(clamping: count)
    }
}

@c @implementation
public func ring_reg_lookup(_ reg: OpaquePointer?, _ addr: UnsafeRawPointer?, _ len: Int,
                            _ index: UnsafeMutablePointer<UInt32>?, _ avail: UnsafeMutablePointer<Int>?) -> Int32 {
    // The lock-free path: no fork guard (see Entry.swift); its failures,
    // which build messages, run inside it.
    warmLibrary()
    let a = UInt64(UInt(bitPattern: addr))
    let handle = UInt(bitPattern: reg)
    let lookup = Rings.lookup(handle, a)
    guard case let .found(slot, room) = lookup else {
        return call("ring_reg_lookup") { () throws(PhyrError) -> Int32 in
            _ = try registrationHandle(reg)
            if case .notLive = lookup { throw Rings.notLive(handle) }
            throw PhyrError(.ENOENT, "no buffer of this registration holds \(hex(a))")
        }
    }
    index?.pointee = slot
    avail?.pointee = Int(bitPattern: UInt(min(room, UInt64(UInt(bitPattern: len)))))
    return 0
}

@c @implementation
public func ring_unregister_ranges(_ reg: OpaquePointer?) -> Int32 {
    call("ring_unregister_ranges") { () throws(PhyrError) -> Int32 in
        try Rings.unregister(try registrationHandle(reg))
        return 0
    }
}
