/// The families built into the engine, registered in `ModelRegistry` at first use.
let builtinModelFamilies: [ModelFamily] = [
    DiTTransformer2DModel.family, PixArtTransformer2DModel.family, SD3Transformer2DModel.family, FluxTransformer2DModel.family,
    WanTransformer3DModel.family,
]
