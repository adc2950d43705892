// SPDX-License-Identifier: MIT
import CPhyr
import Glibc
import PhyrCore

// The C entry points for pins: validate, convert, call, map errors.  Their C
// signatures live in include/phyr.h; @implementation makes the compiler check
// each one against it.

@c @implementation
public func phyr_pin(_ addr: UnsafeRawPointer?, _ len: Int, _ flags: UInt32,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
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
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    guard let tail else { return fail(PhyrError(EINVAL, "phyr_split: tail is NULL")) }
    let cut = UInt64(UInt(bitPattern: offset))
    let id: UInt64
    do { id = try pinID(r, "phyr_split") } catch { return fail(error) }
    do throws(Pinner.SplitFailure) {
        let tailID = try Pinner.split(id, at: cut)
        tail.pointee = OpaquePointer(bitPattern: PinTable.handle(for: tailID))
        return 0
    } catch {
        switch error {
        case .table(.notLive(let why)):
            return fail(notLive("phyr_split", r, "range", why))
        case .table(.offsetOutside(let length)):
            return fail(PhyrError(EINVAL, "phyr_split: offset \(cut) is not inside the range (0 < offset < \(length))"))
        case .table(.tooMany):
            return fail(Pinner.tooMany().prefixed("phyr_split"))
        case .table(.heldChanged):
            return fail(PhyrError(EAGAIN, "phyr_split: the range changed while it was being split"))
        case .kernel(let e):
            return fail(PhyrError(e.code, "phyr_split: " + e.message))
        }
    }
}

@c @implementation
public func phyr_unpin(_ r: OpaquePointer?) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    let id: UInt64
    do { id = try pinID(r, "phyr_unpin") } catch { return fail(error) }
    do throws(Absence) {
        try Pinner.unpin(id)
        return 0
    } catch {
        return fail(notLive("phyr_unpin", r, "range", error))
    }
}

@c @implementation
public func phyr_range(_ r: OpaquePointer?, _ addr: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                       _ len: UnsafeMutablePointer<Int>?) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    let id: UInt64, span: Range<UInt64>
    do { id = try pinID(r, "phyr_range") } catch { return fail(error) }
    do throws(Absence) {
        span = try Pinner.withRange(id) { $0.range }
    } catch {
        return fail(notLive("phyr_range", r, "range", error))
    }
    addr?.pointee = UnsafeMutableRawPointer(bitPattern: UInt(span.lowerBound))
    len?.pointee = Int(span.upperBound - span.lowerBound)
    return 0
}

@c @implementation
public func phyr_segs(_ r: OpaquePointer?, _ segs: UnsafeMutablePointer<phyr_seg>?, _ nr: UInt32) -> Int32 {
    let savedErrno = enterLibrary()
    defer { leaveLibrary(savedErrno) }
    if segs == nil && nr > 0 { return fail(PhyrError(EINVAL, "phyr_segs: segs is NULL but nr is \(nr)")) }
    let id: UInt64
    do { id = try pinID(r, "phyr_segs") } catch { return fail(error) }
    do throws(Absence) {
        let count = try Pinner.withRange(id) { p -> Int in
            if let segs {
                for (i, s) in p.segments.prefix(Int(nr)).enumerated() {
                    segs[i] = phyr_seg(addr: s.addr, len: s.len, phys: s.phys,
                                       page_shift: s.pageShift, flags: s.flags.rawValue)
                }
            }
            return p.segments.count
        }
        return Int32(clamping: count)
    } catch {
        return fail(notLive("phyr_segs", r, "range", error))
    }
}
