// Layer 7 — parallel strategies: attention runtimes that communicate (Ulysses, Ring, USP) and the
// step schedules that split a denoising step over ranks (CFG split, sequence sharding).
