//! Against the simulator's ground truth: under targeted assignment (riskier
//! learners treated more often) the naive per-arm churn rate is biased, IPW and
//! self-normalised IPW are not, and their bootstrap intervals cover the true
//! "everyone gets this arm" churn rate as often as they claim (DESIGN.md's
//! acceptance rule: inside the 99.9% binomial region of the nominal level).

use churn_ab::policy_value::{Bootstrap, Estimator, Logged, policy_churn};
use churn_sim::{AssignmentMode, SimParams, simulate};
use statrs::distribution::{Binomial, DiscreteCDF};

/// The smallest and largest number of covered intervals out of `r` that a
/// correct 95% method produces with probability 99.9%.
fn acceptance_region(r: u64) -> (u64, u64) {
    let binomial = Binomial::new(0.95, r).expect("valid");
    let low = (0..=r).find(|&k| binomial.cdf(k) > 0.0005).unwrap_or(0);
    let high = (0..=r).find(|&k| binomial.cdf(k) >= 0.9995).unwrap_or(r);
    (low, high)
}

#[test]
fn ipw_is_unbiased_and_covers_where_the_naive_rate_is_biased() {
    // CI runs 60 experiments; `CHURN_AB_EXPERIMENTS=500 cargo test --release -p
    // churn-ab --test simulated -- --nocapture` runs the larger check.
    let experiments: u64 = std::env::var("CHURN_AB_EXPERIMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let arms = 4;
    let mut covered = [[0u64; 4]; 2];
    let mut error = [[0.0f64; 4]; 3];
    for seed in 0..experiments {
        let params = SimParams {
            learners: 3000,
            days: 120,
            seed: 1000 + seed,
            assignment: AssignmentMode::Targeted,
            ..SimParams::default()
        }
        .check()
        .expect("valid parameters");
        let simulation = simulate(&params, &|_| {});
        let assigned: Vec<_> = simulation
            .truth
            .learners
            .iter()
            .filter_map(|l| l.experiment.as_ref())
            .collect();
        assert!(assigned.len() > 500, "{} assigned", assigned.len());
        let log: Vec<Logged> = assigned
            .iter()
            .map(|e| Logged {
                arm: e.arm,
                propensity: e.propensity,
                churned: e.churned,
            })
            .collect();
        for arm in 0..arms {
            let truth =
                assigned.iter().map(|e| e.probabilities[arm]).sum::<f64>() / assigned.len() as f64;
            let given: Vec<_> = assigned.iter().filter(|e| e.arm == arm).collect();
            let naive = given.iter().filter(|e| e.churned).count() as f64 / given.len() as f64;
            error[0][arm] += naive - truth;
            let everyone = vec![arm; log.len()];
            let bootstrap = Bootstrap {
                alpha: 0.05,
                resamples: 300,
                seed,
            };
            for (k, estimator) in [Estimator::Ipw, Estimator::SelfNormalisedIpw]
                .into_iter()
                .enumerate()
            {
                let value = policy_churn(&log, &everyone, arms, None, estimator, bootstrap)
                    .expect("estimate");
                error[k + 1][arm] += value.estimate - truth;
                covered[k][arm] +=
                    u64::from(value.interval.low <= truth && truth <= value.interval.high);
            }
        }
    }
    let r = experiments;
    let (low, high) = acceptance_region(r);
    for (name, counts) in ["IPW", "SNIPW"].iter().zip(&covered) {
        for (arm, count) in counts.iter().enumerate() {
            assert!(
                (low..=high).contains(count),
                "{name}, arm {arm}: {count} of {r} intervals cover the truth (acceptance {low}..={high})"
            );
        }
    }
    let mean = |e: f64| e / r as f64;
    // Control goes mostly to low-risk learners under targeting: its naive rate is too low.
    assert!(
        mean(error[0][0]) < -0.01,
        "naive control bias {}",
        mean(error[0][0])
    );
    for (arm, (ipw, snipw)) in error[1].iter().zip(&error[2]).enumerate() {
        assert!(
            mean(*snipw).abs() < 0.005,
            "SNIPW bias, arm {arm}: {}",
            mean(*snipw)
        );
        assert!(
            mean(*ipw).abs() < 0.01,
            "IPW bias, arm {arm}: {}",
            mean(*ipw)
        );
    }
    eprintln!(
        "mean errors over {r} experiments (naive / IPW / SNIPW), per arm: {:?}",
        (0..arms)
            .map(|a| (mean(error[0][a]), mean(error[1][a]), mean(error[2][a])))
            .collect::<Vec<_>>()
    );
    eprintln!(
        "coverage IPW {:?} SNIPW {:?} of {r}",
        covered[0], covered[1]
    );
}
