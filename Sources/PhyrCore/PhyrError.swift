// SPDX-License-Identifier: MIT
/// The one way libphyr fails above the kernel layer: an errno for the C
/// caller and a sentence for `phyr_last_error()` that names the address,
/// mapping or limit at fault.  The C edge puts the function's name in front.
package struct PhyrError: Error, Sendable {
    package var errno: Errno
    package var message: String

    package init(_ errno: Errno, _ message: String) {
        self.errno = errno
        self.message = message
    }

    /// The same failure, its sentence starting with the function's name.
    package func prefixed(_ function: String) -> PhyrError {
        PhyrError(errno, function + ": " + message)
    }
}

/// `0x7f12_3456_7000` style, as /proc/self/maps prints addresses.
package func hex(_ x: UInt64) -> String { "0x" + String(x, radix: 16) }

package func spanText(_ r: Range<UInt64>) -> String { "[\(hex(r.lowerBound)), \(hex(r.upperBound)))" }

/// Bytes in the largest binary unit that keeps a whole part: "8 MiB", "4.5 KiB".
package func byteCount(_ n: UInt64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var unit = 0
    var scale: UInt64 = 1
    while unit + 1 < units.count && n >= scale * 1024 { scale *= 1024; unit += 1 }
    if unit == 0 { return "\(n) bytes" }
    let whole = n / scale, tenths = (n % scale) * 10 / scale
    return tenths == 0 ? "\(whole) \(units[unit])" : "\(whole).\(tenths) \(units[unit])"
}

