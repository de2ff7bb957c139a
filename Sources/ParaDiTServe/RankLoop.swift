import Foundation
import ParaDiTDiffusion
import ParaDiTDistributed
import ParaDiTModels
import ParaDiTParallel
import ParaDiTTensor

/// What every rank does at the next step boundary, decided by rank 0 and broadcast: jobs that join
/// the batch (their prompt embeddings follow, in order), jobs that leave it, or the end.
struct StepPlan: Codable, Equatable {
    var joins: [ServeJob] = []
    var drops: [Int] = []
    var shutdown = false

    /// Rank 0's plan on every rank of `comm`: its JSON length, then its bytes one per float.
    static func exchange(_ mine: StepPlan?, over comm: Communicator) throws -> StepPlan {
        let bytes = try mine.map { Array(try JSONEncoder().encode($0)) } ?? []
        let header = Tensor(shape: [1], values: [Float(bytes.count)])
        try comm.broadcast(header, root: 0)
        let count = Int(header.scalars[0])
        let payload = comm.rank == 0 ? Tensor(shape: [count], values: bytes.map(Float.init)) : Tensor(zeros: [count])
        try comm.broadcast(payload, root: 0)
        if let mine { return mine }
        return try JSONDecoder().decode(StepPlan.self, from: Data(payload.scalars.map { UInt8($0) }))
    }
}

/// One rank's serving loop: at every step boundary it takes rank 0's plan, adds and removes
/// requests in its `DenoisingBatch`, runs one transformer pass over the batch split as the
/// parallel configuration says, steps every request, and decodes those that finished. Rank 0 also
/// answers them. Every rank sees the same plans, so collectives (the parallel decode among them)
/// happen in the same order everywhere; an idle rank 0 still sends a plan every `idle` seconds so
/// that the others' waits stay within the communication timeout.
public final class RankLoop {
    let pipeline: TextToImagePipeline
    let context: ParallelContext
    /// Rank 0's queue (nil on the other ranks).
    let queue: JobQueue?
    let idle: Double

    public init(pipeline: TextToImagePipeline, context: ParallelContext, queue: JobQueue?, idle: Double = 0.5) {
        (self.pipeline, self.context, self.queue, self.idle) = (pipeline, context, queue, idle)
    }

    var world: Communicator { context.world }

    public func run() throws {
        let parallel = ParallelTransformer(model: pipeline.transformer, context: context, warmupSteps: 0)
        let batch = DenoisingBatch()
        var jobs: [Int: (request: GenerationRequest, conditioning: Conditioning?)] = [:]
        while true {
            let planned = queue?.plan(key: batch.key, images: batch.images, idle: idle)
            let plan = try StepPlan.exchange(planned.map { StepPlan(joins: $0.joins.map(\.job), drops: $0.drops,
                                                                    shutdown: $0.shutdown) }, over: world)
            if plan.shutdown { break }
            for id in plan.drops {
                batch.remove(id)
                jobs[id] = nil
            }
            if !plan.drops.isEmpty { queue?.metrics?.runningImages.set(Double(batch.images)) }
            for job in plan.joins {
                let own = planned?.joins.first { $0.job.id == job.id }?.conditioning
                let conditioning = job.hasConditioning
                    ? try shareConditioning(own.map { .success($0) }, over: world) : nil
                do {
                    try batch.add(id: job.id, sampler: pipeline.sampler(job.request, conditioning: conditioning))
                    jobs[job.id] = (job.request, conditioning)
                } catch {
                    queue?.complete(job.id, .failure(.failed("\(error)")))
                }
            }
            guard !batch.isEmpty else { continue }
            let (start, images) = (DispatchTime.now().uptimeNanoseconds, batch.images)
            let outcomes: [DenoisingBatch.Outcome]
            do {
                outcomes = batch.step(try parallel.forward(batch.inputs()))
            } catch {
                // A failed pass fails every request in it; the server goes on.
                outcomes = batch.ids.map { DenoisingBatch.Outcome(id: $0, latents: .failure(error)) }
                for id in batch.ids { batch.remove(id) }
            }
            queue?.metrics?.step(images: images, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            queue?.metrics?.runningImages.set(Double(batch.images))
            for outcome in outcomes {
                guard let (request, conditioning) = jobs.removeValue(forKey: outcome.id) else { continue }
                let images = Result { try decode(outcome.latents.get(), request: request, conditioning: conditioning) }
                queue?.complete(outcome.id, images.mapError { .failed("\($0)") })
            }
        }
        try parallel.finish()
    }

    /// The PNG files of finished latents, on rank 0 (other ranks return none): decoded over every
    /// rank when the latent has a row for each, as `paradit generate` does, else on rank 0.
    func decode(_ latents: Tensor, request: GenerationRequest, conditioning: Conditioning?) throws -> [[UInt8]] {
        let (z, scaling) = try pipeline.vaeInput(latents, request: request, conditioning: conditioning)
        let image: Tensor
        if world.size > 1 && z.size(2) >= world.size {
            image = try pipeline.decoder().decode(latents: z, scaling: scaling, comm: world)
        } else {
            guard world.rank == 0 else { return [] }
            image = try pipeline.decode(latents, request: request, conditioning: conditioning)
        }
        guard world.rank == 0 else { return [] }
        return try VaeImageProcessor.postprocess(image).map(PNGWriter.encode)
    }
}
