// SPDX-License-Identifier: MIT
/// One live pinned range.
///
/// What a pin learned about its memory -- segments, lockable pieces,
/// MADV_DONTFORK extents, files -- is kept once, in a `PinDescription` the
/// halves of a split and a registration's references share, and read
/// through `range` and `lockInterval`: a split copies no array and allocates
/// nothing, and a table of 100,000 pieces of one pin holds one description.
package struct PinnedRange: Sendable {
    package var range: Range<UInt64>
    /// Whole folios covering `range`: what this pin holds locked.
    package var lockInterval: Range<UInt64>
    package var pinFlags: UInt32
    /// Where the lock ends when that is also where its mapping ended, with
    /// nothing mapped after it, at pin time: the one place mremap(2) can grow
    /// the locked mapping in place (and the kernel locks the growth).
    package var growableEnd: UInt64? = nil
    /// PHYR_PIN_LONGTERM: the buffers of libphyr's holder rings whose kernel
    /// pins hold the range's folios, in address order.  Shared by the
    /// range's references (a registration's, the halves of a split), each
    /// emptied when the last range holding it goes.
    package var held: [HeldBuffer] = []
    /// PHYR_PIN_LONGTERM: held, not locked.
    package var isLongterm: Bool = false
    /// The pin's findings, for a span that may be wider than `range`.
    private var found: PinDescription

    package init(range: Range<UInt64>, lockInterval: Range<UInt64>, lockable: [Range<UInt64>],
                 segments: ContiguousArray<Segment>, pinFlags: UInt32, growableEnd: UInt64? = nil,
                 anonymous: Bool = true, files: Set<FileKey> = [], held: [HeldBuffer] = [],
                 dontfork: [Range<UInt64>] = [], isLongterm: Bool = false) {
        self.range = range
        self.lockInterval = lockInterval
        self.pinFlags = pinFlags
        self.growableEnd = growableEnd
        self.held = held
        self.isLongterm = isLongterm
        found = PinDescription(segments: segments, lockable: lockable, dontfork: dontfork, files: files,
                               anonymous: anonymous)
    }

    /// The segments of `range`.
    package var segments: ContiguousArray<Segment> {
        get { PinTable.clip(found.segments, to: range) }
        set { found = found.with(segments: newValue) }
    }

    /// Segments of a span around `range` (at least all of it): enough to find
    /// the folio at an address inside it, with no copy.
    package var segmentsAround: ContiguousArray<Segment> { found.segments }

    /// The parts of `lockInterval` mlock applies to (see `Backing.lockablePieces`).
    package var lockable: [Range<UInt64>] {
        get { PinTable.intersect([lockInterval], found.lockable) }
        set { found = found.with(lockable: newValue) }
    }

    /// PHYR_PIN_DONTFORK: the folio extents MADV_DONTFORK covers for it.
    package var dontfork: [Range<UInt64>] {
        found.dontfork.isEmpty ? [] : PinTable.intersect(found.dontfork, [lockInterval])
    }

    /// What the memory was at pin time: anonymous, and which files.  A
    /// release that finds its lock gone looks for it only among these.
    package var anonymous: Bool { found.anonymous }
    package var files: Set<FileKey> { found.files }
}

/// What a pin found out about its memory (see `PinnedRange`); never changed
/// once made, so any number of ranges share it.
package final class PinDescription: Sendable {
    let segments: ContiguousArray<Segment>
    let lockable: [Range<UInt64>]
    let dontfork: [Range<UInt64>]
    let files: Set<FileKey>
    let anonymous: Bool

    init(segments: ContiguousArray<Segment>, lockable: [Range<UInt64>], dontfork: [Range<UInt64>],
         files: Set<FileKey>, anonymous: Bool) {
        self.segments = segments
        self.lockable = lockable
        self.dontfork = dontfork
        self.files = files
        self.anonymous = anonymous
    }

    func with(segments: ContiguousArray<Segment>) -> PinDescription {
        PinDescription(segments: segments, lockable: lockable, dontfork: dontfork, files: files, anonymous: anonymous)
    }

    func with(lockable: [Range<UInt64>]) -> PinDescription {
        PinDescription(segments: segments, lockable: lockable, dontfork: dontfork, files: files, anonymous: anonymous)
    }
}

/// A fixed buffer in one of libphyr's holder rings: the kernel's long-term
/// pin (FOLL_PIN | FOLL_LONGTERM) of the unit's memory, one reference per
/// folio where the unit coalesces.
package struct HeldBuffer: Equatable, Sendable {
    /// Unique in the process, never reused.
    package var serial: UInt64
    /// The holder ring, by a number never reused in the process.
    package var ring: UInt64
    package var slot: Int
    package var unit: BufferUnit
    /// What the kernel charged for it, and the huge spans that charge counts
    /// in its ring (see `LockCharge`).
    package var charge: UInt64
    package var hugeSpans: [Range<UInt64>]

    package init(serial: UInt64, ring: UInt64, slot: Int, unit: BufferUnit, charge: UInt64,
                 hugeSpans: [Range<UInt64>]) {
        self.serial = serial
        self.ring = ring
        self.slot = slot
        self.unit = unit
        self.charge = charge
        self.hugeSpans = hugeSpans
    }
}
