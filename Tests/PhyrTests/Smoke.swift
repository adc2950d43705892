import Testing
@testable import Phyr
@Test func smoke() { #expect(true) }
