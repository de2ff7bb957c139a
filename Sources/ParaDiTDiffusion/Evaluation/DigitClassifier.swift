import Foundation
import ParaDiTTensor
import ParaDiTWeights

/// The judge shipped with the demo model (tools/train_demo.py): multinomial logistic regression on
/// the grey image (mean of R, G, B in [0, 1]) average-pooled `pool`×`pool`. It answers "is this
/// generated image recognisably the class it was asked for?" for `paradit quality`.
public struct DigitClassifier: Sendable {
    public let classes: Int
    public let pool: Int
    /// [classes, features] and [classes].
    let weight: [Float], bias: [Float]
    let features: Int

    struct Config: Decodable {
        var pool: Int
        var classes: Int
    }

    /// The classifier in `<pipeline>/classifier` (config.json and model.safetensors), nil if the
    /// folder has none.
    public static func load(pipeline directory: String) throws -> DigitClassifier? {
        let folder = (directory as NSString).appendingPathComponent("classifier")
        guard FileManager.default.fileExists(atPath: folder) else { return nil }
        let file = try ConfigFile(directory: folder)
        guard file.className == "DigitClassifier" else {
            throw WeightsError.badConfig(path: file.path, reason: "_class_name is \(file.className), expected DigitClassifier")
        }
        let config = try file.decode(Config.self)
        let weights = try SafeTensorsFile(path: (folder as NSString).appendingPathComponent("model.safetensors"))
        let (w, b) = (try weights.tensor("weight"), try weights.tensor("bias"))
        guard (1...1000).contains(config.classes), (1...64).contains(config.pool), w.rank == 2, w.size(0) == config.classes,
              b.shape == [config.classes] else {
            throw WeightsError.badConfig(path: file.path, reason: "weight \(w.shape) and bias \(b.shape) do not match "
                                         + "\(config.classes) classes (pool \(config.pool))")
        }
        return DigitClassifier(classes: config.classes, pool: config.pool, weight: w.scalars, bias: b.scalars, features: w.size(1))
    }

    /// The most likely class of `image`; its pooled size must give the classifier's feature count.
    public func classify(_ image: RGBImage) throws -> Int {
        let (h, w) = (image.height / pool, image.width / pool)
        guard image.height % pool == 0, image.width % pool == 0, h * w == features else {
            throw WeightsError.badInput(name: "image", reason: "\(image.width)×\(image.height) pooled \(pool)× does not give "
                                        + "the classifier's \(features) features")
        }
        var x = [Float](repeating: 0, count: features)
        for py in 0..<image.height {
            for px in 0..<image.width {
                let p = (py * image.width + px) * 3
                let grey = (Float(image.pixels[p]) + Float(image.pixels[p + 1]) + Float(image.pixels[p + 2])) / (3 * 255)
                x[(py / pool) * w + px / pool] += grey / Float(pool * pool)
            }
        }
        let logits = (0..<classes).map { c in zip(weight[(c * features)..<((c + 1) * features)], x).reduce(bias[c]) { $0 + $1.0 * $1.1 } }
        return logits.indices.max { logits[$0] < logits[$1] }!
    }

    /// The share of `images` classified as the class each was generated for.
    public func accuracy(_ images: [RGBImage], labels: [Int]) throws -> Double {
        guard images.count == labels.count, !images.isEmpty else { return 0 }
        let hits = try zip(images, labels).filter { try classify($0.0) == $0.1 }.count
        return Double(hits) / Double(images.count)
    }
}
