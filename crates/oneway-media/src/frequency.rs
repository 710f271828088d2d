//! The dominant frequency of PCM audio, from its upward zero crossings.

/// The fraction of the peak amplitude a signal must fall below (negatively) before an upward
/// zero crossing counts: hysteresis against noise near zero.
const HYSTERESIS: f64 = 0.1;

/// The frequency in Hz of the tone in `samples` at `rate` Hz, from the time between its first
/// and last upward zero crossings (interpolated between samples). `None` for silence or fewer
/// than two crossings.
pub fn zero_crossing_frequency(samples: &[i16], rate: u32) -> Option<f64> {
    let peak = samples.iter().map(|s| s.unsigned_abs()).max()?;
    if peak < 64 {
        return None;
    }
    let threshold = -(f64::from(peak) * HYSTERESIS);
    let mut armed = false;
    let mut first: Option<f64> = None;
    let mut last = 0.0;
    let mut crossings = 0u64;
    for (i, pair) in samples.windows(2).enumerate() {
        let (a, b) = (f64::from(pair[0]), f64::from(pair[1]));
        if a < threshold {
            armed = true;
        }
        if armed && a < 0.0 && b >= 0.0 {
            armed = false;
            let t = i as f64 + a / (a - b);
            first.get_or_insert(t);
            last = t;
            crossings += 1;
        }
    }
    let first = first?;
    if crossings < 2 || last <= first {
        return None;
    }
    Some((crossings - 1) as f64 * f64::from(rate) / (last - first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pure_sine_measures_exactly() {
        let samples: Vec<i16> = (0..24_000)
            .map(|i| {
                (10_000.0 * (std::f64::consts::TAU * 523.0 * i as f64 / 48_000.0).sin()) as i16
            })
            .collect();
        let hz = zero_crossing_frequency(&samples, 48_000).expect("a tone");
        assert!((hz - 523.0).abs() < 0.5, "{hz}");
    }

    #[test]
    fn silence_has_no_frequency() {
        assert_eq!(zero_crossing_frequency(&[0; 1000], 48_000), None);
        assert_eq!(zero_crossing_frequency(&[], 48_000), None);
    }
}
