import ArgumentParser
import ParaDiTDiffusion

/// The class labels of a class-conditional run: `--class` as given; without it, every class of a
/// pipeline that ships a classifier (the demo), `--per-class` images each, laid out as a contact
/// sheet; otherwise the family's default label.
struct ClassSelection {
    var labels: [Int]
    /// Rows of the contact sheet (one per class, `columns` images each), nil for separate images.
    var sheet: (classes: [Int], columns: Int)?

    init(classes: [Int], perClass: Int, sheet forced: Bool, classifier: DigitClassifier?, family: PipelineFamily) throws {
        guard (1...1000).contains(perClass) else { throw ValidationError("--per-class must be 1...1000, got \(perClass)") }
        if classes.isEmpty, let classifier {
            labels = (0..<classifier.classes).flatMap { Array(repeating: $0, count: perClass) }
            sheet = (Array(0..<classifier.classes), perClass)
            return
        }
        labels = classes.isEmpty ? family.defaultClassLabels ?? [] : classes
        guard forced else { sheet = nil; return }
        // Rows in the order classes first appear; each class must have as many images.
        var order: [Int] = []
        for c in labels where !order.contains(c) { order.append(c) }
        let counts = order.map { c in labels.filter { $0 == c }.count }
        guard let columns = counts.first, counts.allSatisfy({ $0 == columns }) else {
            throw ValidationError("--sheet needs as many images of each class; got \(zip(order, counts).map { "\($0.0)×\($0.1)" })")
        }
        labels = order.flatMap { Array(repeating: $0, count: columns) }
        sheet = (order, columns)
    }
}
