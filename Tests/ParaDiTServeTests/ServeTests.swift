import Testing
@testable import ParaDiTServe
