import Logging
import ParaDiTCLI

// Progress and diagnostics go to stderr so that stdout carries only results.
LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
ParaDiTCommand.main()
