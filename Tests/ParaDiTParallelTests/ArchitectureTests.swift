import Foundation
import ParaDiTParallel
import Testing

/// The layering rules that keep "a new model conforms and registers" true.
@Suite("Architecture: code above the models never names a family")
struct ArchitectureTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources")

    /// A family's types, pipeline classes or enum cases, in code (comments and help prose may
    /// mention families by their short names).
    static let familyName = try! NSRegularExpression(pattern: """
        \\b(DiT|PixArt|SD3|Flux|Wan)(Transformer2DModel|Transformer3DModel|Inputs|Config|Recipe|Pipeline|AlphaPipeline\
        |SigmaPipeline)\\b|\\bStableDiffusion3Pipeline\\b|\\.(dit|pixart|sd3|flux|wan)\\b
        """)

    /// Lines of code (not comments) in Swift files under `target`, except under `allowed` folders.
    static func codeLines(_ target: String, except allowed: [String] = []) throws -> [(String, Int, String)] {
        let root = sources.appendingPathComponent(target)
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!.compactMap { $0 as? URL }
            .filter { url in url.pathExtension == "swift" && !allowed.contains { url.path.contains("/\(target)/\($0)/") } }
        return try files.flatMap { url in
            try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                .filter { !$0.element.trimmingCharacters(in: .whitespaces).hasPrefix("//") }
                .map { (url.lastPathComponent, $0.offset + 1, String($0.element)) }
        }
    }

    @Test("Parallel, Diffusion (outside Pipelines/Families) and CLI code name no family", arguments: [
        ("ParaDiTParallel", [String]()), ("ParaDiTCLI", []), ("ParaDiTDiffusion", ["Pipelines/Families"]),
    ])
    func noFamilyNames(target: String, allowed: [String]) throws {
        let lines = try Self.codeLines(target, except: allowed)
        #expect(lines.count > 500, "found the sources of \(target)")
        for (file, line, text) in lines {
            let hit = Self.familyName.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
            #expect(hit == nil, "\(target)/\(file):\(line) names a family: \(text.trimmingCharacters(in: .whitespaces))")
        }
    }

    @Test("models and strategies call tensor operations: no raw pointers, no .data, no withUnsafe…",
          arguments: ["ParaDiTModels", "ParaDiTParallel"])
    func tensorsOnly(target: String) throws {
        let lines = try Self.codeLines(target)
        #expect(lines.count > 500, "found the sources of \(target)")
        let raw = try NSRegularExpression(pattern: "\\.data\\b|withUnsafe|Unsafe[A-Za-z]*Pointer")
        for (file, line, text) in lines {
            let hit = raw.firstMatch(in: text, range: NSRange(text.startIndex..., in: text))
            #expect(hit == nil, "\(target)/\(file):\(line) reaches raw memory: \(text.trimmingCharacters(in: .whitespaces))")
        }
        #expect(raw.firstMatch(in: "x.data + 1", range: NSRange(location: 0, length: 10)) != nil)
    }

    @Test("the check finds a family name when one is there")
    func detects() {
        for text in ["case let .dit(m): return m", "let m = model as? FluxTransformer2DModel", "\"PixArtAlphaPipeline\""] {
            #expect(Self.familyName.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil, "\(text)")
        }
    }
}

@Suite("One plan, one tag registry")
struct PlanTests {
    @Test("message tags are distinct")
    func tags() { #expect(Set(MessageTag.all).count == MessageTag.all.count) }

    @Test("the attention plan follows the degrees", arguments: [
        (ParallelConfig(ulysses: 2), true, AttentionPlan.Columns.none, false), (ParallelConfig(ring: 2), false, .ring, false),
        (ParallelConfig(ring: 2).oneSidedCopy, false, .ring, true), (ParallelConfig(ulysses: 2, torus: 2).oneSidedCopy, true, .torus, true),
        (ParallelConfig(distrifusion: 2), false, .none, false),
    ])
    func plan(config: ParallelConfig, ulysses: Bool, columns: AttentionPlan.Columns, oneSided: Bool) {
        let p = AttentionPlan(config)
        #expect(p.ulysses == ulysses && p.columns == columns && p.oneSided == oneSided)
    }
}
