import Foundation

// Sinusoidal embeddings as diffusers computes them: the timestep embedding in float32 like torch,
// the 2-D sincos table from float32 grid positions through float64 trigonometry.

/// Timestep embedding (`get_timestep_embedding`): timesteps [n] → [n, dim].
/// Frequencies e^(−ln(maxPeriod)·i / (dim/2 − downscaleFreqShift)); [sin, cos] halves, swapped when
/// `flipSinToCos`; an odd dim gets a zero last column. Float32 throughout, as torch computes it.
public func timestepEmbedding(_ timesteps: [Float], dim: Int, flipSinToCos: Bool, downscaleFreqShift: Float,
                              scale: Float = 1, maxPeriod: Float = 10000) -> Tensor {
    let half = dim / 2
    let out = Tensor(zeros: [timesteps.count, dim])
    let logPeriod = Float(-Foundation.log(Double(maxPeriod)))
    let freqs = (0..<half).map { Foundation.exp(logPeriod * Float($0) / (Float(half) - downscaleFreqShift)) }
    for (n, t) in timesteps.enumerated() {
        let row = out.data + n * dim
        for i in 0..<half {
            let arg = scale * (t * freqs[i])
            let (first, second) = flipSinToCos ? (i + half, i) : (i, i + half)
            row[first] = Foundation.sin(arg)
            row[second] = Foundation.cos(arg)
        }
    }
    return out
}

/// Reference for `timestepEmbedding`: the same formula with every step in Double.
public func timestepEmbeddingReference(_ timesteps: [Float], dim: Int, flipSinToCos: Bool,
                                       downscaleFreqShift: Float, scale: Float = 1, maxPeriod: Float = 10000) -> [[Double]] {
    timesteps.map { t in
        let half = dim / 2
        var row = [Double](repeating: 0, count: dim)
        for i in 0..<half {
            let freq = Foundation.exp(-Foundation.log(Double(maxPeriod)) * Double(i) / (Double(half) - Double(downscaleFreqShift)))
            let arg = Double(scale) * Double(t) * freq
            row[flipSinToCos ? i + half : i] = Foundation.sin(arg)
            row[flipSinToCos ? i : i + half] = Foundation.cos(arg)
        }
        return row
    }
}

/// The 2-D sincos position embedding (`get_2d_sincos_pos_embed`) for the given tokens of a
/// gridHeight × gridWidth patch grid, token t at row t / gridWidth, column t % gridWidth → [tokens, embedDim].
/// The first half of each row encodes the column, the second the row, as diffusers orders them.
/// Positions are index / (size / baseSize) / interpolationScale, in float32 like torch.
public func sincosPositionEmbedding2D(embedDim: Int, gridHeight: Int, gridWidth: Int, baseSize: Float,
                                      interpolationScale: Float, tokens: [Int]) -> Tensor {
    check(embedDim % 4 == 0, "the 2-D sincos embedding needs embedDim divisible by 4, got \(embedDim)")
    let quarter = embedDim / 4
    // One table row per distinct column and row coordinate: O((H+W)·D) trigonometry, not O(H·W·D).
    let colTable = sincosTable(positions: gridPositions(gridWidth, baseSize, interpolationScale), half: quarter)
    let rowTable = sincosTable(positions: gridPositions(gridHeight, baseSize, interpolationScale), half: quarter)
    let out = Tensor(uninitialized: [tokens.count, embedDim])
    for (n, t) in tokens.enumerated() {
        check(t >= 0 && t < gridHeight * gridWidth, "token \(t) is outside the \(gridHeight)×\(gridWidth) grid")
        let row = out.data + n * embedDim
        colTable.withUnsafeBufferPointer { row.update(from: $0.baseAddress! + (t % gridWidth) * 2 * quarter, count: 2 * quarter) }
        rowTable.withUnsafeBufferPointer { (row + 2 * quarter).update(from: $0.baseAddress! + (t / gridWidth) * 2 * quarter, count: 2 * quarter) }
    }
    return out
}

func gridPositions(_ size: Int, _ baseSize: Float, _ interpolationScale: Float) -> [Float] {
    let step = Float(Double(size) / Double(baseSize))
    return (0..<size).map { Float($0) / step / interpolationScale }
}

/// [positions.count × 2·half] rows of [sin(p·ω_i), cos(p·ω_i)] with ω_i = 10000^(−i/half).
func sincosTable(positions: [Float], half: Int) -> [Float] {
    let omega = (0..<half).map { 1 / Foundation.pow(10000.0, Double($0) / Double(half)) }
    var table = [Float](repeating: 0, count: positions.count * 2 * half)
    for (p, pos) in positions.enumerated() {
        for i in 0..<half {
            let arg = Double(pos) * omega[i]
            table[p * 2 * half + i] = Float(Foundation.sin(arg))
            table[p * 2 * half + half + i] = Float(Foundation.cos(arg))
        }
    }
    return table
}

/// Reference for `sincosPositionEmbedding2D`: each token's row computed directly.
public func sincosPositionEmbedding2DReference(embedDim: Int, gridHeight: Int, gridWidth: Int, baseSize: Float,
                                               interpolationScale: Float, token: Int) -> [Double] {
    let quarter = embedDim / 4
    let colPos = Float(token % gridWidth) / Float(Double(gridWidth) / Double(baseSize)) / interpolationScale
    let rowPos = Float(token / gridWidth) / Float(Double(gridHeight) / Double(baseSize)) / interpolationScale
    var row = [Double]()
    for pos in [colPos, rowPos] {
        let args = (0..<quarter).map { Double(pos) / Foundation.pow(10000.0, Double($0) / Double(quarter)) }
        row += args.map { Foundation.sin($0) } + args.map { Foundation.cos($0) }
    }
    return row
}
