//! Small statistics over samples.

/// The `q`-quantile (`0.0..=1.0`) of `values`, nearest rank; sorts in place. 0 when empty.
pub fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() - 1) as f64 * q).round() as usize;
    values[rank]
}

/// The median; sorts in place.
pub fn median(values: &mut [f64]) -> f64 {
    quantile(values, 0.5)
}

/// The mean. 0 when empty.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

/// The population standard deviation.
pub fn stdev(values: &[f64]) -> f64 {
    let m = mean(values);
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / values.len().max(1) as f64).sqrt()
}

/// The median absolute deviation of `values` from `target`.
pub fn median_abs_deviation(values: &[f64], target: f64) -> f64 {
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - target).abs()).collect();
    median(&mut deviations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_spread() {
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&mut v), 3.0);
        assert_eq!(quantile(&mut v, 1.0), 5.0);
        assert_eq!(quantile(&mut v, 0.0), 1.0);
        assert_eq!(mean(&v), 3.0);
        assert!((stdev(&v) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(median_abs_deviation(&v, 3.0), 1.0);
        assert_eq!(quantile(&mut [], 0.5), 0.0);
    }
}
