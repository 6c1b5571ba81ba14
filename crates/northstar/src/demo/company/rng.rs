//! The generator's random numbers: SplitMix64 behind `rand`'s traits.
//!
//! Not `rand`'s `StdRng`, whose algorithm may change between `rand`
//! releases: a demo reloaded after an upgrade must produce the same message
//! ids, so that storing it again stores nothing twice. SplitMix64 is also a
//! few operations per draw, which keeps generation fast in debug builds
//! (`cargo run -- demo`), where ChaCha is about twenty times slower.

use rand::{RngCore, SeedableRng};

/// A SplitMix64 generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub(in crate::demo) struct DemoRng {
    state: u64,
}

/// SplitMix64's increment (the golden ratio's fraction).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijection of `u64` that scrambles its
/// bits, so distinct inputs give distinct, random-looking outputs.
pub(in crate::demo) fn splitmix(value: u64) -> u64 {
    let mut z = value.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RngCore for DemoRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        let next = splitmix(self.state);
        self.state = self.state.wrapping_add(GAMMA);
        next
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl SeedableRng for DemoRng {
    type Seed = [u8; 8];

    fn from_seed(seed: Self::Seed) -> Self {
        DemoRng {
            state: u64::from_le_bytes(seed),
        }
    }

    fn seed_from_u64(state: u64) -> Self {
        DemoRng { state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_splitmix64s_reference_sequence() {
        // The first outputs for seed 1234567 of the reference implementation
        // (https://prng.di.unimi.it/splitmix64.c).
        let mut rng = DemoRng::seed_from_u64(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }
}
