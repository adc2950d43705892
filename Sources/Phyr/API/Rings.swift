// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

// The C entry points for io_uring buffers: validate, convert, call, map errors.

@c @implementation
public func ring_register_ranges(_ ring: OpaquePointer?, _ ranges: UnsafePointer<OpaquePointer?>?, _ nr: UInt32,
                                 _ flags: UInt32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    guard let ring else { return fail(PhyrError(EINVAL, "ring_register_ranges: ring is NULL")) }
    guard let out else { return fail(PhyrError(EINVAL, "ring_register_ranges: out is NULL")) }
    guard let ranges, nr > 0 else { return fail(PhyrError(EINVAL, "ring_register_ranges: no ranges (ranges NULL or nr 0)")) }
    guard flags == 0 else { return fail(PhyrError(EINVAL, "ring_register_ranges: flags must be 0, not \(hex(UInt64(flags)))")) }
    var ids: [UInt64] = []
    ids.reserveCapacity(Int(nr))
    for i in 0..<Int(nr) {
        do { ids.append(try pinID(ranges[i], "ring_register_ranges: ranges[\(i)]")) } catch { return fail(error) }
    }
    do throws(PhyrError) {
        let handle = try Registrar.register(ring: ring, ranges: ids)
        out.pointee = OpaquePointer(bitPattern: handle)
        return 0
    } catch {
        return fail(error)
    }
}

@c @implementation
public func ring_reg_bufs(_ reg: OpaquePointer?, _ bufs: UnsafeMutablePointer<ring_buf>?, _ nr: UInt32) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    if bufs == nil && nr > 0 { return fail(PhyrError(EINVAL, "ring_reg_bufs: bufs is NULL but nr is \(nr)")) }
    // Copied out only once the read is known to be consistent.
    let snapshot = Registrar.read(UnsafeRawPointer(reg)) { index -> (Int, [ring_buf]) in
        let n = index.count
        let copies = (0..<min(n, Int(nr))).map { i in
            ring_buf(addr: index.start(i), len: index.end(i) &- index.start(i), index: index.slot(i),
                     page_shift: index.pageShift(i), flags: index.flags(i), resv: 0)
        }
        return (n, copies)
    }
    guard let (count, copies) = snapshot else {
        return fail(notLive("ring_reg_bufs", reg, "registration", Registrar.absence(of: UnsafeRawPointer(reg))))
    }
    if let bufs {
        for (i, b) in copies.enumerated() { bufs[i] = b }
    }
    return Int32(clamping: count)
}

@c @implementation
public func ring_reg_lookup(_ reg: OpaquePointer?, _ addr: UnsafeRawPointer?, _ len: Int,
                            _ index: UnsafeMutablePointer<UInt32>?, _ avail: UnsafeMutablePointer<Int>?) -> Int32 {
    // The lock-free path: no fork guard (see Entry.swift); its failures,
    // which build messages, run inside it.
    warmLibrary()
    let a = UInt64(UInt(bitPattern: addr))
    let hit = Registrar.read(UnsafeRawPointer(reg)) { table -> (slot: UInt32, room: UInt64)? in
        table.find(a).map { (table.slot($0), table.end($0) &- a) }
    }
    guard let hit else {
        let savedErrno = enterLibrary()
        defer { leaveLibrary(savedErrno) }
        return fail(notLive("ring_reg_lookup", reg, "registration", Registrar.absence(of: UnsafeRawPointer(reg))))
    }
    guard let (slot, room) = hit else {
        let savedErrno = enterLibrary()
        defer { leaveLibrary(savedErrno) }
        return fail(PhyrError(ENOENT, "ring_reg_lookup: no buffer of this registration holds \(hex(a))"))
    }
    index?.pointee = slot
    avail?.pointee = Int(bitPattern: UInt(min(room, UInt64(UInt(bitPattern: len)))))
    return 0
}

@c @implementation
public func ring_unregister_ranges(_ reg: OpaquePointer?) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    do throws(PhyrError) {
        try Registrar.unregister(UnsafeRawPointer(reg))
        return 0
    } catch {
        return fail(error)
    }
}
