// SPDX-License-Identifier: MIT
import Testing
@testable import PhyrCore

/// Reading libphyr's lock mark out of smaps VmFlags lines, as kernels print them.
@Suite struct LockMarksTests {
    static func flags(_ line: String) -> [String] { line.split(separator: " ").map(String.init) }

    @Test func namedMarkSince62() {
        #expect(LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr mr mw me lo lf ac")))
        #expect(!LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr mr mw me lo ac")), "a plain mlock is the caller's")
        #expect(!LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr mr mw me ac")))
        #expect(!LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr mr mw me lf ac")), "the mark alone is not a lock")
    }

    /// Linux 6.1 prints VM_LOCKONFAULT as "??" (read off a 6.1 guest).
    @Test func unnamedMarkBefore62() {
        #expect(LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr mr mw me lo ?? ac sd")))
        #expect(LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr sh mr mw me ms lo io de ??")))
        // A "??" past bit 19 (after VM_ACCOUNT) is some other flag.
        #expect(!LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr mr mw me lo ac ??")))
        #expect(!LockMarks.isLibphyrLock(vmFlags: Self.flags("rd wr ?? mr mw me lo ac")))
    }
}
