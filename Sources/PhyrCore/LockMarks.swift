// SPDX-License-Identifier: MIT
/// Reading the mark libphyr puts on its locks (VM_LOCKONFAULT next to
/// VM_LOCKED) out of a VmFlags line of /proc/self/smaps.
package enum LockMarks {
    /// smaps prints one mnemonic per set flag, in bit order.  VM_LOCKED
    /// (bit 13) is "lo"; VM_LOCKONFAULT (bit 19) is "lf" since Linux 6.2 and
    /// "??" before it.  Bits 14 to 18 have had names all along, so a "??"
    /// reached from "lo" through only those names can be bit 19 alone.
    package static func isLibphyrLock(vmFlags: [String]) -> Bool {
        guard let lo = vmFlags.firstIndex(of: "lo") else { return false }
        if vmFlags.contains("lf") { return true }
        let between: Set<String> = ["io", "sr", "rr", "dc", "de"]
        for flag in vmFlags[(lo + 1)...] {
            if flag == "??" { return true }
            if !between.contains(flag) { return false }
        }
        return false
    }
}
