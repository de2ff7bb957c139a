import ArgumentParser
import Foundation
import ParaDiTDistributed

struct Selftest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check this installation: communication between ranks.",
        subcommands: [SelftestComm.self])
}

struct SelftestComm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "comm",
        abstract: "Check every collective and point-to-point operation against its definition.",
        discussion: """
        Under mpirun the MPI transport is checked; otherwise --world ranks run as threads.

        Examples:
          paradit selftest comm --world 4
          mpirun -np 4 paradit selftest comm
        """)

    @Option(help: "Ranks for the local transport (ignored under mpirun).")
    var world: Int = 4

    @Option(help: "Make this rank fail before the checks, to see the others stop instead of hanging.")
    var failRank: Int?

    @Option(help: "Under mpirun: make this rank's process die (SIGKILL) before the checks.")
    var killRank: Int?

    @Option(help: "Make this rank stall before the checks (under mpirun it stops itself with SIGSTOP; a thread sleeps past the timeout), to see the others time out naming it.")
    var stallRank: Int?

    @Option(help: "Seconds a rank waits for its peers without progress before it fails naming them.")
    var commTimeout: Double = 30

    struct InjectedFailure: Error, CustomStringConvertible {
        var rank: Int
        var description: String { "injected failure on rank \(rank) (--fail-rank)" }
    }

    func validate() throws {
        guard (1...1024).contains(world) else { throw ValidationError("--world must be 1...1024, got \(world)") }
        guard commTimeout > 0, commTimeout <= 86_400 else { throw ValidationError("--comm-timeout must be 0...86400 seconds, got \(commTimeout)") }
        if !MPICommunicator.isLaunchedByMPI { try checkRanks(size: world) }
    }

    /// The injected failures must name ranks that exist, or the check would pass untested.
    func checkRanks(size: Int) throws {
        for (name, rank) in [("--fail-rank", failRank), ("--kill-rank", killRank), ("--stall-rank", stallRank)] {
            if let rank, !(0..<size).contains(rank) {
                throw ValidationError("\(name) \(rank) is not a rank of \(size) (0...\(size - 1))")
            }
        }
        if killRank != nil && !MPICommunicator.isLaunchedByMPI {
            throw ValidationError("--kill-rank ends a process: it needs mpirun (with threads, use --fail-rank)")
        }
    }

    func run() throws {
        let results: [[(String, String?)]]
        if MPICommunicator.isLaunchedByMPI {
            let comm = try MPICommunicator.world()
            // Every rank refuses; rank 0 alone says why, so the lines do not interleave.
            do { try checkRanks(size: comm.size) } catch { throw comm.rank == 0 ? error : ExitCode.failure }
            if comm.rank == failRank { comm.abort("\(InjectedFailure(rank: comm.rank))") }
            if comm.rank == killRank { kill(getpid(), SIGKILL) }
            if comm.rank == stallRank { raise(SIGSTOP) }
            comm.timeout = commTimeout
            let mine = CommunicatorChecks.run(comm)
            // A timed-out rank ends the job: its peers cannot finish either.
            if let hang = mine.first(where: { $0.1?.contains("timed out") == true }) { comm.abort("\(hang.0): \(hang.1!)") }
            // Every rank reports its own failures; rank 0 prints the summary.
            for (name, failure) in mine { if let failure { print("rank \(comm.rank): FAILED \(name): \(failure)") } }
            var failed = Float(mine.filter { $0.1 != nil }.count)
            try comm.allReduce(&failed, count: 1)
            if comm.rank == 0 { summary("MPI", ranks: comm.size, checks: mine.count, failedRankChecks: Int(failed)) }
            if failed > 0 { throw ExitCode.failure }
            return
        }
        let (failRank, stallRank, timeout) = (self.failRank, self.stallRank, commTimeout)
        results = try LocalWorld.run(size: world, timeout: timeout) { comm in
            if comm.rank == failRank { throw InjectedFailure(rank: comm.rank) }
            if comm.rank == stallRank { Thread.sleep(forTimeInterval: timeout + 1) }
            return CommunicatorChecks.run(comm)
        }
        for (rank, mine) in results.enumerated() {
            for (name, failure) in mine { if let failure { print("rank \(rank): FAILED \(name): \(failure)") } }
        }
        let failed = results.reduce(0) { $0 + $1.filter { $0.1 != nil }.count }
        summary("local", ranks: world, checks: results[0].count, failedRankChecks: failed)
        if failed > 0 { throw ExitCode.failure }
    }

    func summary(_ transport: String, ranks: Int, checks: Int, failedRankChecks: Int) {
        print("\(transport) transport, \(ranks) ranks: \(checks * ranks - failedRankChecks) passed, \(failedRankChecks) failed (checks × ranks)")
    }
}
