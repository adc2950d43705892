import CPhyr
import Glibc

// The C entry points for pins: validate, convert, call, map errors.  Their C
// signatures live in include/phyr.h; @implementation makes the compiler check
// each one against it.

@c @implementation
public func phyr_pin(_ addr: UnsafeRawPointer?, _ len: Int, _ flags: UInt32,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let out else { return fail(PhyrError(EINVAL, "phyr_pin: out is NULL")) }
    // size_t arrives as Int: read it back as the unsigned value C passed.
    let length = UInt64(UInt(bitPattern: len))
    guard length > 0 else { return fail(PhyrError(EINVAL, "phyr_pin: len is 0")) }
    guard flags & ~PinFlag.all == 0 else {
        return fail(PhyrError(EINVAL, "phyr_pin: unknown flag bits \(hex(UInt64(flags & ~PinFlag.all)))"))
    }
    let start = UInt64(UInt(bitPattern: addr))
    let (end, overflow) = start.addingReportingOverflow(length)
    guard !overflow else {
        return fail(PhyrError(EINVAL, "phyr_pin: \(hex(start)) + \(length) wraps around the address space"))
    }
    do throws(PhyrError) {
        let id = try Pinner.pin(start..<end, flags: flags)
        out.pointee = OpaquePointer(bitPattern: PinTable.handle(for: id))
        return 0
    } catch {
        return fail(error)
    }
}

@c @implementation
public func phyr_split(_ r: OpaquePointer?, _ offset: Int,
                       _ tail: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guard let tail else { return fail(PhyrError(EINVAL, "phyr_split: tail is NULL")) }
    let cut = UInt64(UInt(bitPattern: offset))
    let id: UInt64
    switch pinID(r, "phyr_split") {
    case .success(let v): id = v
    case .failure(let e): return fail(e)
    }
    let result = Pinner.table.withLock { t in
        Result { () throws(PinTable.SplitError) -> UInt64 in try t.split(id, at: cut) }
    }
    switch result {
    case .success(let tailID):
        tail.pointee = OpaquePointer(bitPattern: PinTable.handle(for: tailID))
        return 0
    case .failure(.notLive):
        return fail(notLive("phyr_split", r, "range"))
    case .failure(.offsetOutside(let length)):
        return fail(PhyrError(EINVAL, "phyr_split: offset \(cut) is not inside the range (0 < offset < \(length))"))
    }
}

@c @implementation
public func phyr_unpin(_ r: OpaquePointer?) -> Int32 {
    switch pinID(r, "phyr_unpin") {
    case .failure(let e):
        return fail(e)
    case .success(let id):
        return Pinner.unpin(id) ? 0 : fail(notLive("phyr_unpin", r, "range"))
    }
}

@c @implementation
public func phyr_range(_ r: OpaquePointer?, _ addr: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ len: UnsafeMutablePointer<Int>?) -> Int32 {
    let span: Range<UInt64>
    switch pinID(r, "phyr_range") {
    case .failure(let e): return fail(e)
    case .success(let id):
        guard let live = Pinner.table.withLock({ $0.range(id)?.range }) else {
            return fail(notLive("phyr_range", r, "range"))
        }
        span = live
    }
    addr?.pointee = UnsafeMutableRawPointer(bitPattern: UInt(span.lowerBound))
    len?.pointee = Int(span.upperBound - span.lowerBound)
    return 0
}

@c @implementation
public func phyr_segs(_ r: OpaquePointer?, _ segs: UnsafeMutablePointer<phyr_seg>?, _ nr: UInt32) -> Int32 {
    if segs == nil && nr > 0 { return fail(PhyrError(EINVAL, "phyr_segs: segs is NULL but nr is \(nr)")) }
    let id: UInt64
    switch pinID(r, "phyr_segs") {
    case .failure(let e): return fail(e)
    case .success(let v): id = v
    }
    // Copy out under the lock: a concurrent split must not be seen half done.
    let count: Int? = Pinner.table.withLock { t in
        guard let p = t.range(id) else { return nil }
        if let segs {
            for (i, s) in p.segments.prefix(Int(nr)).enumerated() {
                segs[i] = phyr_seg(addr: s.addr, len: s.len, phys: s.phys,
                                   page_shift: s.pageShift, flags: s.flags.rawValue)
            }
        }
        return p.segments.count
    }
    guard let count else { return fail(notLive("phyr_segs", r, "range")) }
    return Int32(clamping: count)
}
