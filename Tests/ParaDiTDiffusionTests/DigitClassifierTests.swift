import Foundation
import ParaDiTDiffusion
import ParaDiTTensor
import ParaDiTWeights
import Testing

@Suite("Digit classifier")
struct DigitClassifierTests {
    let demo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("models/digits-dit").path

    @Test("the shipped classifier loads; a folder without one has none; wrong shapes are refused")
    func loading() throws {
        let classifier = try #require(try DigitClassifier.load(pipeline: demo))
        #expect(classifier.classes == 10 && classifier.pool == 4)
        #expect(try DigitClassifier.load(pipeline: pipelineFixtures + "/dit/pipeline") == nil)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paradit-clf-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir + "/classifier", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(#"{"_class_name": "DigitClassifier", "pool": 4, "classes": 10}"#.utf8).write(to: URL(fileURLWithPath: dir + "/classifier/config.json"))
        try writeSafeTensors(["weight": .float(Tensor(zeros: [9, 64])), "bias": .float(Tensor(zeros: [10]))], to: dir + "/classifier/model.safetensors")
        #expect(throws: WeightsError.self) { try DigitClassifier.load(pipeline: dir) }
    }

    @Test("an image of the wrong size is refused; a plain image gets one class")
    func classify() throws {
        let classifier = try #require(try DigitClassifier.load(pipeline: demo))
        #expect(throws: WeightsError.self) { try classifier.classify(RGBImage(width: 16, height: 16, pixels: Array(repeating: 0, count: 768))) }
        let black = RGBImage(width: 32, height: 32, pixels: Array(repeating: 0, count: 3072))
        #expect((0..<10).contains(try classifier.classify(black)))
        #expect(try classifier.accuracy([black, black], labels: [try classifier.classify(black), -1]) == 0.5)
    }
}
