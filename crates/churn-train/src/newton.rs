//! L2-penalised logistic regression by Newton's method (iteratively
//! reweighted least squares): scikit-learn's objective, solved to machine
//! precision in a handful of passes over the rows.
//!
//! Written here rather than taken from linfa-logistic because L-BFGS over an
//! ndarray design needed hundreds of passes (each packing the whole design
//! for a matrix product): 10 s for 100k rows × 40 columns, where Newton's few
//! passes take well under one. With a few dozen columns the Hessian is tiny,
//! so each Newton step is one pass over the rows plus a Cholesky solve.

use rayon::prelude::*;

/// Rows per partial sum. Sums are formed per chunk and added in chunk order,
/// so the fit is the same bits at any thread count.
const CHUNK: usize = 2048;
/// Newton steps at most; a fit that needs more has not converged.
const MAX_STEPS: usize = 100;

/// Why a fit failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NewtonError {
    #[error("the rows have a single label: logistic regression has no finite optimum")]
    SingleLabel,
    #[error("the design has {values} values, not a multiple of {width} columns × {rows} labels")]
    Shape {
        values: usize,
        width: usize,
        rows: usize,
    },
    #[error("C must be finite and > 0, got {0}")]
    C(f64),
    #[error("did not converge in {MAX_STEPS} Newton steps")]
    NoConvergence,
    #[error("the Hessian is not positive definite (a non-finite value in the design?)")]
    NotPositiveDefinite,
}

/// Coefficients and intercept minimising
/// `C · Σᵢ log(1 + exp(−ỹᵢ (xᵢ·w + b))) + ½ ‖w‖²` over `rows` rows of the
/// row-major `design` (`width` columns) with labels `y` in {0, 1}: the
/// intercept is not penalised, as in scikit-learn.
pub fn fit(
    design: &[f64],
    width: usize,
    y: &[f64],
    c: f64,
) -> Result<(Vec<f64>, f64), NewtonError> {
    let rows = y.len();
    if design.len() != rows * width {
        return Err(NewtonError::Shape {
            values: design.len(),
            width,
            rows,
        });
    }
    if !(c.is_finite() && c > 0.0) {
        return Err(NewtonError::C(c));
    }
    let positives = y.iter().filter(|&&v| v == 1.0).count();
    if positives == 0 || positives == rows {
        return Err(NewtonError::SingleLabel);
    }
    let log_odds = (positives as f64 / (rows - positives) as f64).ln();
    if width == 0 {
        return Ok((Vec::new(), log_odds));
    }
    let lambda = 1.0 / c;
    // Parameters: the width coefficients, then the intercept.
    let dim = width + 1;
    let mut theta = vec![0.0; dim];
    theta[width] = log_odds;
    let mut objective = objective_at(design, width, y, &theta, lambda);
    for _ in 0..MAX_STEPS {
        let (gradient, mut hessian) = derivatives(design, width, y, &theta, lambda);
        let step = solve(&mut hessian, &gradient, dim)?;
        // The Newton decrement: twice the predicted decrease of a full step.
        let decrement: f64 = gradient.iter().zip(&step).map(|(g, d)| g * d).sum();
        let largest = |v: &[f64]| v.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
        if decrement <= 0.0 || largest(&step) <= 1e-12 * (1.0 + largest(&theta)) {
            return Ok(split_intercept(theta));
        }
        // Near the optimum the objective is flat to rounding (its change is
        // below its last bits) while the gradient still points the way:
        // there a full Newton step is taken on the quadratic model's word.
        let rounding = 1e-12 * objective.abs().max(1.0);
        let quadratic = decrement <= rounding;
        // Backtracking (Armijo) elsewhere: logistic loss is convex, so a
        // shorter step always decreases it.
        let mut scale = 1.0;
        loop {
            let trial: Vec<f64> = theta
                .iter()
                .zip(&step)
                .map(|(t, d)| t - scale * d)
                .collect();
            let value = objective_at(design, width, y, &trial, lambda);
            if value <= objective - 1e-4 * scale * decrement
                || (quadratic && value <= objective + rounding)
            {
                theta = trial;
                objective = value;
                break;
            }
            scale *= 0.5;
            if scale < 1e-12 {
                return Ok(split_intercept(theta));
            }
        }
    }
    Err(NewtonError::NoConvergence)
}

fn split_intercept(mut theta: Vec<f64>) -> (Vec<f64>, f64) {
    let intercept = theta.pop().unwrap_or(0.0);
    (theta, intercept)
}

fn margin(row: &[f64], theta: &[f64]) -> f64 {
    let width = row.len();
    row.iter().zip(theta).map(|(x, w)| x * w).sum::<f64>() + theta[width]
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn objective_at(design: &[f64], width: usize, y: &[f64], theta: &[f64], lambda: f64) -> f64 {
    let partial: Vec<f64> = design
        .par_chunks(CHUNK * width)
        .zip(y.par_chunks(CHUNK))
        .map(|(block, labels)| {
            block
                .chunks_exact(width)
                .zip(labels)
                .map(|(row, &t)| {
                    let z = margin(&row[..width], theta);
                    softplus(z) - t * z
                })
                .sum::<f64>()
        })
        .collect();
    let penalty: f64 = theta[..width].iter().map(|w| w * w).sum();
    partial.iter().sum::<f64>() + 0.5 * lambda * penalty
}

/// The gradient and the Hessian (upper triangle filled, row-major `dim²`)
/// of the objective divided by C (`Σ loss + λ/2 ‖w‖²`, λ = 1/C).
fn derivatives(
    design: &[f64],
    width: usize,
    y: &[f64],
    theta: &[f64],
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let dim = width + 1;
    let partial: Vec<(Vec<f64>, Vec<f64>)> = design
        .par_chunks(CHUNK * width)
        .zip(y.par_chunks(CHUNK))
        .map(|(block, labels)| {
            let mut gradient = vec![0.0; dim];
            let mut hessian = vec![0.0; dim * dim];
            let mut x = vec![1.0; dim];
            for (row, &t) in block.chunks_exact(width).zip(labels) {
                x[..width].copy_from_slice(&row[..width]);
                let p = churn_model::calibration::sigmoid(margin(&row[..width], theta));
                let residual = p - t;
                let weight = p * (1.0 - p);
                for a in 0..dim {
                    gradient[a] += residual * x[a];
                    let wa = weight * x[a];
                    let line = &mut hessian[a * dim + a..(a + 1) * dim];
                    for (h, xb) in line.iter_mut().zip(&x[a..]) {
                        *h += wa * xb;
                    }
                }
            }
            (gradient, hessian)
        })
        .collect();
    let mut gradient = vec![0.0; dim];
    let mut hessian = vec![0.0; dim * dim];
    for (g, h) in &partial {
        for (total, v) in gradient.iter_mut().zip(g) {
            *total += v;
        }
        for (total, v) in hessian.iter_mut().zip(h) {
            *total += v;
        }
    }
    for a in 0..width {
        gradient[a] += lambda * theta[a];
        hessian[a * dim + a] += lambda;
    }
    (gradient, hessian)
}

/// Solves `H d = g` for symmetric positive definite `H` (upper triangle of a
/// row-major `dim²`, overwritten) by Cholesky factorisation.
fn solve(h: &mut [f64], g: &[f64], dim: usize) -> Result<Vec<f64>, NewtonError> {
    // H = Uᵀ U with U upper triangular, stored in place of H's upper triangle.
    for i in 0..dim {
        let mut diagonal = h[i * dim + i];
        for k in 0..i {
            diagonal -= h[k * dim + i] * h[k * dim + i];
        }
        if !(diagonal > 0.0 && diagonal.is_finite()) {
            return Err(NewtonError::NotPositiveDefinite);
        }
        let pivot = diagonal.sqrt();
        h[i * dim + i] = pivot;
        for j in i + 1..dim {
            let mut v = h[i * dim + j];
            for k in 0..i {
                v -= h[k * dim + i] * h[k * dim + j];
            }
            h[i * dim + j] = v / pivot;
        }
    }
    // Uᵀ z = g, then U d = z.
    let mut z = vec![0.0; dim];
    for i in 0..dim {
        let mut v = g[i];
        for k in 0..i {
            v -= h[k * dim + i] * z[k];
        }
        z[i] = v / h[i * dim + i];
    }
    let mut d = vec![0.0; dim];
    for i in (0..dim).rev() {
        let mut v = z[i];
        for k in i + 1..dim {
            v -= h[i * dim + k] * d[k];
        }
        d[i] = v / h[i * dim + i];
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two columns, labels from a known logistic model (a fixed LCG).
    fn data(rows: usize) -> (Vec<f64>, Vec<f64>) {
        let mut state: u64 = 7;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut design = Vec::new();
        let mut y = Vec::new();
        for _ in 0..rows {
            let (a, b) = (uniform() * 4.0 - 2.0, uniform() * 2.0 - 1.0);
            let p = churn_model::calibration::sigmoid(1.5 * a - 2.0 * b + 0.3);
            design.extend([a, b]);
            y.push(f64::from(u8::from(uniform() < p)));
        }
        (design, y)
    }

    #[test]
    fn the_gradient_vanishes_at_the_fit() {
        let (design, y) = data(5_000);
        let c = 0.5;
        let (w, b) = fit(&design, 2, &y, c).unwrap();
        let mut theta = w.clone();
        theta.push(b);
        // The first-order condition of C·Σ loss + ½‖w‖², written out.
        let mut gradient = [0.0; 3];
        for (row, t) in design.chunks(2).zip(&y) {
            let p = churn_model::calibration::sigmoid(row[0] * w[0] + row[1] * w[1] + b);
            gradient[0] += c * (p - t) * row[0];
            gradient[1] += c * (p - t) * row[1];
            gradient[2] += c * (p - t);
        }
        gradient[0] += w[0];
        gradient[1] += w[1];
        for g in gradient {
            assert!(g.abs() < 1e-9, "{gradient:?}");
        }
        // And the truth is near: 5,000 rows pin the slopes to about ±0.1.
        assert!(
            (w[0] - 1.5).abs() < 0.2 && (w[1] + 2.0).abs() < 0.3,
            "{w:?}"
        );
        // A perturbed point has a larger objective.
        let lambda = 1.0 / c;
        let at = objective_at(&design, 2, &y, &theta, lambda);
        for k in 0..3 {
            let mut moved = theta.clone();
            moved[k] += 1e-3;
            assert!(objective_at(&design, 2, &y, &moved, lambda) > at);
        }
    }

    #[test]
    fn the_fit_is_the_same_bits_at_any_thread_count() {
        let (design, y) = data(20_000);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(&design, 2, &y, 1.0).unwrap())
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            fit(&[1.0, 2.0], 1, &[1.0, 1.0], 1.0),
            Err(NewtonError::SingleLabel)
        );
        assert!(matches!(
            fit(&[1.0, 2.0, 3.0], 2, &[1.0, 0.0], 1.0),
            Err(NewtonError::Shape { .. })
        ));
        assert_eq!(
            fit(&[1.0, 2.0], 1, &[1.0, 0.0], 0.0),
            Err(NewtonError::C(0.0))
        );
    }
}
