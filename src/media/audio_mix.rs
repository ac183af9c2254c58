//! The arithmetic of the audio mix: sum, mix-minus and soft clipping.
//!
//! Samples are 16-bit; sums are kept in `i32`, which holds 65 536 full-scale inputs without
//! overflow. Integer sums make mix-minus exact: subtracting a talker's own frame from the full
//! mix gives bit for bit the sum of everybody else, so no trace of their own voice comes back.

/// Sample rate of every frame the mixer handles.
pub const SAMPLE_RATE: u32 = 48_000;
/// One mixer tick: 10 ms of mono audio.
pub const FRAME_SAMPLES: usize = 480;

/// Where soft clipping starts, as a fraction of full scale. Below it the mix is untouched.
const KNEE: f32 = 0.75;

/// Adds `frame` into `acc`.
pub fn accumulate(acc: &mut [i32], frame: &[i16]) {
    for (a, &s) in acc.iter_mut().zip(frame) {
        *a += i32::from(s);
    }
}

/// `out = full - sum(excluded)`: the mix without the excluded participants' frames.
pub fn mix_minus(full: &[i32], excluded: &[&[i16]], out: &mut [i32]) {
    out.copy_from_slice(full);
    for frame in excluded {
        for (o, &s) in out.iter_mut().zip(frame.iter()) {
            *o -= i32::from(s);
        }
    }
}

/// Maps a wide sum into 16 bits: linear up to the knee, then a smooth curve that approaches but
/// never reaches full scale, so loud moments with several talkers compress instead of cracking.
pub fn soft_clip(x: i32) -> i16 {
    let full = f32::from(i16::MAX);
    let v = x as f32 / full;
    let mag = v.abs();
    if mag <= KNEE {
        return x as i16;
    }
    let room = 1.0 - KNEE;
    let shaped = KNEE + room * ((mag - KNEE) / room).tanh();
    let y = (shaped * full).min(full);
    (y.copysign(v)) as i16
}

/// Renders a sum into 16-bit samples.
pub fn render(acc: &[i32], out: &mut [i16]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = soft_clip(a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f: impl Fn(usize) -> i16) -> Vec<i16> {
        (0..FRAME_SAMPLES).map(f).collect()
    }

    #[test]
    fn sum_adds_every_input() {
        let a = frame(|i| i as i16);
        let b = frame(|i| -(2 * i as i16));
        let mut acc = vec![0i32; FRAME_SAMPLES];
        accumulate(&mut acc, &a);
        accumulate(&mut acc, &b);
        for (i, v) in acc.iter().enumerate() {
            assert_eq!(*v, -(i as i32));
        }
    }

    #[test]
    fn mix_minus_equals_the_sum_of_the_others_exactly() {
        // Loud, clipping-range inputs: the subtraction must still be exact.
        let inputs: Vec<Vec<i16>> = (0..6)
            .map(|k| frame(|i| ((i * 7919 + k * 104_729) % 65_536) as u16 as i16))
            .collect();
        let mut full = vec![0i32; FRAME_SAMPLES];
        for f in &inputs {
            accumulate(&mut full, f);
        }
        for own in 0..inputs.len() {
            let mut minus = vec![0i32; FRAME_SAMPLES];
            mix_minus(&full, &[&inputs[own]], &mut minus);
            let mut others = vec![0i32; FRAME_SAMPLES];
            for (k, f) in inputs.iter().enumerate() {
                if k != own {
                    accumulate(&mut others, f);
                }
            }
            assert_eq!(minus, others, "participant {own}");
        }
    }

    #[test]
    fn mix_minus_of_several_excluded() {
        let a = frame(|_| 1000);
        let b = frame(|_| 200);
        let c = frame(|_| 30);
        let mut full = vec![0i32; FRAME_SAMPLES];
        for f in [&a, &b, &c] {
            accumulate(&mut full, f);
        }
        let mut out = vec![0i32; FRAME_SAMPLES];
        mix_minus(&full, &[&a, &c], &mut out);
        assert!(out.iter().all(|&v| v == 200));
    }

    #[test]
    fn soft_clip_is_identity_below_the_knee() {
        let knee = (KNEE * f32::from(i16::MAX)) as i32;
        for x in [-knee, -12_345, -1, 0, 1, 777, knee] {
            assert_eq!(i32::from(soft_clip(x)), x);
        }
    }

    #[test]
    fn soft_clip_is_bounded_monotonic_and_symmetric() {
        let mut last = soft_clip(-400_000);
        for x in (-400_000..400_000).step_by(97) {
            let y = soft_clip(x);
            assert!(y >= last, "not monotonic at {x}");
            assert!(y > i16::MIN, "reached full scale at {x}");
            assert_eq!(i32::from(soft_clip(-x)), -i32::from(y), "asymmetric at {x}");
            last = y;
        }
        assert!(soft_clip(10 * i32::from(i16::MAX)) > 32_000);
    }

    #[test]
    fn render_of_a_clipping_sum_stays_in_range() {
        let loud = frame(|_| i16::MAX);
        let mut acc = vec![0i32; FRAME_SAMPLES];
        for _ in 0..8 {
            accumulate(&mut acc, &loud);
        }
        let mut out = vec![0i16; FRAME_SAMPLES];
        render(&acc, &mut out);
        assert!(out.iter().all(|&s| s > 32_000));
    }
}
