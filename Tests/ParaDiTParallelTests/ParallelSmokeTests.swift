import XCTest
@testable import ParaDiTParallel
