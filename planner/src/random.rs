//! The solver's random choices from the policy's seed.

use std::sync::Mutex;

use vrp_core::prelude::{Float, Random};
use vrp_core::rosomaxa::utils::RandomGen;

/// SplitMix64 behind a lock: rosomaxa's `Random` is shared between threads (ours is one).
/// `get_rng` can only hand out rosomaxa's own generator, whose repeatable variant is seeded with
/// zero per thread: on our fresh single-thread pool that is repeatable too.
#[derive(Debug)]
pub(crate) struct SeededRandom {
    state: Mutex<u64>,
}

impl SeededRandom {
    pub(crate) fn new(seed: u64) -> SeededRandom {
        SeededRandom {
            state: Mutex::new(seed),
        }
    }

    fn next(&self) -> u64 {
        // Poisoned only by a panic between these two lines, which cannot happen.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&self) -> Float {
        (self.next() >> 11) as Float / (1u64 << 53) as Float
    }
}

impl Random for SeededRandom {
    fn uniform_int(&self, min: i32, max: i32) -> i32 {
        if max <= min {
            return min;
        }
        let span = (i64::from(max) - i64::from(min) + 1) as u64;
        (i64::from(min) + (self.next() % span) as i64) as i32
    }

    fn uniform_real(&self, min: Float, max: Float) -> Float {
        if max <= min {
            return min;
        }
        min + self.unit() * (max - min)
    }

    fn is_head_not_tails(&self) -> bool {
        self.next() & 1 == 1
    }

    fn is_hit(&self, probability: Float) -> bool {
        self.unit() < probability.clamp(0.0, 1.0)
    }

    fn weighted(&self, weights: &[usize]) -> usize {
        // As rosomaxa's default: the smallest exponential sample with the weights as rates.
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| (-(1.0 - self.unit()).ln() / w.max(1) as Float, i))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(0, |(_, i)| i)
    }

    fn get_rng(&self) -> RandomGen {
        RandomGen::new_repeatable()
    }
}
