import XCTest
@testable import ParaDiTDiffusion
