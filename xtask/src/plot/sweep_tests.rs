//! The lottery sweep's axes: each as long as its own data.

use super::sweep_axes;

#[test]
fn the_ticket_axis_ends_near_the_largest_ticket_ratio_not_the_widest_interval() {
    // The canonical sweep's shape: ratios 1..=10, one interval reaching 16.
    let mut points: Vec<(f64, f64, Option<f64>)> = (1..=10)
        .map(|k| (k as f64, k as f64 * 1.02, Some(0.3)))
        .collect();
    points[8] = (9.0, 8.84, Some(7.17));
    let (x_max, y_min, y_max) = sweep_axes(&points);
    assert_eq!(y_min, 0.0);
    assert!((10.0..=11.0).contains(&x_max), "x to {x_max}");
    assert!(
        y_max >= 8.84 + 7.17,
        "the whole interval shows: y to {y_max}"
    );
    // The ideal (y = x) fits on the CPU axis even where the data fall short.
    let short = [(10.0, 5.0, None)];
    let (x_max, _, y_max) = sweep_axes(&short);
    assert!(y_max >= x_max, "{x_max} {y_max}");
    // An interval reaching under zero is not clipped.
    let (_, y_min, _) = sweep_axes(&[(1.0, 0.98, Some(12.7))]);
    assert!(y_min <= 0.98 - 12.7, "y from {y_min}");
}
