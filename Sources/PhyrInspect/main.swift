// SPDX-License-Identifier: MIT
// phyr-inspect: how any process's memory is backed, why it is not huge, and
// what its io_uring registrations cost.  See phyr-inspect(1).
import PhyrCore
import PhyrKernel

let usage = """
    usage: phyr-inspect [--io-uring] [--json] PID [ADDR[+LEN]]
           phyr-inspect --help | --version

    One row per mapping of process PID (or per mapping meeting ADDR..ADDR+LEN):
    bounds, size, bytes backed by THP / hugetlb / 4 KiB pages / no folio,
    locked or not, and why memory that is not huge is not.
      --io-uring  also every io_uring the process holds and its registered
                  buffers: backing, coalesced or not, kernel entries, lock
                  charge, and what would make a buffer coalesce
      --json      one JSON object instead (io_uring always included)
    ADDR and LEN: decimal or 0x hex; LEN may end in K, M or G.

    """

/// All of `text` to `fd`; the error of a write that failed, or nil.
@discardableResult
func emit(_ fd: Int32, _ text: String) -> Errno? {
    do { try Terminal.emit(fd, text) } catch { return error }
    return nil
}

func fail(_ message: String, code: Int32 = 1) -> Never {
    emit(2, "phyr-inspect: \(message)\n")
    Terminal.exitProcess(code)
}

/// "123", "0x7f00", "4M": digits only, no sign.
func number(_ text: Substring, suffixes: Bool) -> UInt64? {
    var t = text
    var scale: UInt64 = 1
    if suffixes, let last = t.last {
        switch last {
        case "k", "K": scale = 1 << 10
        case "m", "M": scale = 1 << 20
        case "g", "G": scale = 1 << 30
        default: break
        }
        if scale > 1 { t = t.dropLast() }
    }
    let hex = t.hasPrefix("0x") || t.hasPrefix("0X")
    let digits = hex ? t.dropFirst(2) : t
    guard !digits.isEmpty, digits.allSatisfy({ hex ? $0.isHexDigit : $0.isASCII && $0.isNumber }) else { return nil }
    let value = UInt64(digits, radix: hex ? 16 : 10)
    guard let value else { return nil }
    let (scaled, overflow) = value.multipliedReportingOverflow(by: scale)
    return overflow ? nil : scaled
}

/// The command line, read and run.  A function, not top-level code: its
/// variables are its own, not globals.
func run() {
    var rings = false, json = false
    var positional: [String] = []
    for arg in Terminal.arguments.dropFirst() {
        switch arg {
        case "--io-uring": rings = true
        case "--json": json = true
        case "-h", "--help":
            emit(1, usage)
            Terminal.exitProcess(0)
        case "--version":
            emit(1, "phyr-inspect \(Terminal.libraryVersion)\n")
            Terminal.exitProcess(0)
        default:
            if arg.hasPrefix("-") && arg.count > 1 { fail("unknown option \(arg)\n\(usage)", code: 2) }
            positional.append(arg)
        }
    }
    guard positional.count == 1 || positional.count == 2 else { fail("expected PID [ADDR[+LEN]]\n\(usage)", code: 2) }
    guard positional[0].allSatisfy({ $0.isASCII && $0.isNumber }), let pid = Int32(positional[0]), pid > 0 else {
        fail("\(positional[0]) is not a process id", code: 2)
    }

    var range: Range<UInt64>?
    if positional.count == 2 {
        let parts = positional[1].split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)
        guard let addr = number(parts[0], suffixes: false) else { fail("\(parts[0]) is not an address", code: 2) }
        var len: UInt64 = 1
        if parts.count == 2 {
            guard let l = number(parts[1], suffixes: true), l > 0 else { fail("\(parts[1]) is not a length", code: 2) }
            len = l
        }
        // A range running past the top of the address space stops there.
        let (end, overflow) = addr.addingReportingOverflow(len)
        range = addr..<(overflow ? UInt64.max : end)
    }

    do {
        var inspector = Inspector(pid: pid)
        let report = try inspector.inspect(range: range, rings: rings || json)
        let text = json ? JSONOutput.render(report) : TableOutput.render(report, rings: rings)
        if let e = emit(1, text) { fail("writing the report failed: \(e)") }
    } catch {
        fail(error.message)
    }
}

run()
