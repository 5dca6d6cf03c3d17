//! Dropout masks from a counter-based hash, so that every backend draws the
//! same mask: element `i` of a dropout op is kept or dropped by hashing the
//! op's stream seed with `i` (the same 32-bit arithmetic runs in
//! `shaders/src/kernels/dropout.wgsl`). No generator state is carried
//! between steps: a step's masks depend on its seed alone, so a resumed or
//! re-run step draws what it drew before.

/// The PCG output permutation (O'Neill's `pcg_hash`): a 32-bit integer hash
/// with good avalanche, cheap on GPUs.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The seed of the `stream`-th dropout op of a step whose seed is `step_seed`.
pub fn stream_seed(step_seed: u64, stream: u32) -> u32 {
    let folded = (step_seed ^ (step_seed >> 32)) as u32;
    pcg_hash(pcg_hash(folded) ^ pcg_hash(stream.wrapping_add(0x9e37_79b9)))
}

/// Whether element `i` survives dropout with drop probability `p` under
/// `seed`: a uniform 24-bit draw in [0, 1) compared with `p`.
pub fn keep(seed: u32, i: u32, p: f32) -> bool {
    let h = pcg_hash(seed.wrapping_add(pcg_hash(i)));
    ((h >> 8) as f32) * (1.0 / 16_777_216.0) >= p
}

/// The mask of `n` elements, `1/(1 − p)` where kept and 0 where dropped.
pub fn mask(seed: u32, n: usize, p: f32) -> Vec<f32> {
    let scale = 1.0 / (1.0 - p);
    (0..n)
        .map(|i| if keep(seed, i as u32, p) { scale } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About a fraction p is dropped, independently across streams.
    #[test]
    fn drops_about_p_and_streams_differ() {
        for p in [0.1f32, 0.5, 0.9] {
            let m = mask(stream_seed(7, 0), 100_000, p);
            let dropped = m.iter().filter(|&&v| v == 0.0).count() as f32 / 1e5;
            assert!((dropped - p).abs() < 0.01, "p {p}: dropped {dropped}");
        }
        let (a, b) = (
            mask(stream_seed(7, 0), 1000, 0.5),
            mask(stream_seed(7, 1), 1000, 0.5),
        );
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!((400..600).contains(&same), "{same} of 1000 agree");
        assert_eq!(
            mask(stream_seed(7, 3), 1000, 0.5),
            mask(stream_seed(7, 3), 1000, 0.5)
        );
        assert!(mask(stream_seed(8, 0), 1000, 0.0).iter().all(|&v| v == 1.0));
    }
}
