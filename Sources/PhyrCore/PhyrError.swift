// SPDX-License-Identifier: MIT
/// A failure as the C caller sees it: an errno and a sentence for
/// `phyr_last_error()` that names the address, mapping or limit at fault.
package struct PhyrError: Error, Sendable {
    package var code: Int32
    package var message: String

    package init(_ code: Int32, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The same failure, its sentence starting with the function's name.
    package func prefixed(_ function: String) -> PhyrError {
        PhyrError(code, function + ": " + message)
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

