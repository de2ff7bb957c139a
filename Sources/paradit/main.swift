import Foundation
import Logging
import ParaDiTCLI
import ParaDiTTensor

// OpenBLAS picks its kernels when it loads, before main: where it fell back to pre-AVX2 ones on a CPU
// it did not recognise, start again with the right core named (unless the user named one).
if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = BLAS.preferredCoreType {
    setenv("OPENBLAS_CORETYPE", core, 1)
    execv("/proc/self/exe", CommandLine.unsafeArgv)
}
// Progress and diagnostics go to stderr so that stdout carries only results.
LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
ParaDiTCommand.main()
