//! TreeSHAP against the definition: a brute-force Shapley sum over every
//! subset of features, with LightGBM's path-dependent value function.

use churn_gbdt::shap::reference_contributions;
use churn_gbdt::{Explainer, FeatureKind, MissingType, Model, Predictor, Split, Tree};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// E[f(x) | x_S] with unknown features marginalised by training-row cover.
fn conditional_value(tree: &Tree, row: &[f64], known: &[bool], node: i32) -> f64 {
    if node < 0 {
        return tree.leaf_value[!node as usize];
    }
    let n = node as usize;
    let feature = tree.split_feature[n] as usize;
    let (left, right) = (tree.left_child[n], tree.right_child[n]);
    if known[feature] {
        let next = if tree.split[n].goes_left(row[feature]) {
            left
        } else {
            right
        };
        return conditional_value(tree, row, known, next);
    }
    let count = tree.internal_count[n];
    (tree.child_count(left) * conditional_value(tree, row, known, left)
        + tree.child_count(right) * conditional_value(tree, row, known, right))
        / count
}

fn brute_force(model: &Model, row: &[f64]) -> Vec<f64> {
    let m = model.num_features();
    let value = |mask: usize| -> f64 {
        let known: Vec<bool> = (0..m).map(|j| mask >> j & 1 == 1).collect();
        model
            .trees
            .iter()
            .map(|t| {
                if t.split.is_empty() {
                    t.leaf_value[0]
                } else {
                    conditional_value(t, row, &known, 0)
                }
            })
            .sum()
    };
    let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
    let mut phi = vec![0.0; m + 1];
    for (i, slot) in phi.iter_mut().enumerate().take(m) {
        for mask in 0..(1usize << m) {
            if mask >> i & 1 == 1 {
                continue;
            }
            let s = mask.count_ones() as usize;
            let weight = factorial(s) * factorial(m - s - 1) / factorial(m);
            *slot += weight * (value(mask | 1 << i) - value(mask));
        }
    }
    phi[m] = value(0);
    phi
}

/// A random tree over `m` features, covers consistent, a few repeats.
fn random_tree(
    rng: &mut impl FnMut() -> u64,
    m: usize,
    leaves: usize,
    allow_empty_child: bool,
) -> Tree {
    let internal = leaves - 1;
    let mut tree = Tree::constant(0.0, 0.0);
    tree.leaf_value.clear();
    tree.leaf_count.clear();
    // Grow by splitting a random leaf; leaves hold (count) until placed.
    struct Open {
        parent: Option<(usize, bool)>,
        count: f64,
    }
    let root_count = 20.0 + (rng() % 200) as f64;
    let mut open = vec![Open {
        parent: None,
        count: root_count,
    }];
    let mut children: Vec<(i32, i32)> = Vec::new();
    for node in 0..internal {
        let pick = (rng() % open.len() as u64) as usize;
        let leaf = open.swap_remove(pick);
        if let Some((p, left)) = leaf.parent {
            if left {
                children[p].0 = node as i32
            } else {
                children[p].1 = node as i32
            }
        }
        let feature = (rng() % m as u64) as u32;
        let split = match rng() % 5 {
            0 => Split::Categorical {
                bitset: vec![(rng() & 0xff) as u32 | 1],
            },
            k => Split::Numeric {
                threshold: (rng() % 7) as f64 - 3.0,
                default_left: rng().is_multiple_of(2),
                missing: [MissingType::None, MissingType::Zero, MissingType::NaN][(k % 3) as usize],
            },
        };
        let low = if allow_empty_child { 0 } else { 1 };
        let total = leaf.count.max(2.0);
        let left_count =
            (low as f64 + (rng() % (total as u64 - 2 * low + 1)) as f64).min(total - low as f64);
        tree.split_feature.push(feature);
        tree.split.push(split);
        tree.split_gain.push(1.0);
        tree.internal_count.push(total);
        children.push((0, 0));
        open.push(Open {
            parent: Some((node, true)),
            count: left_count,
        });
        open.push(Open {
            parent: Some((node, false)),
            count: total - left_count,
        });
    }
    for (leaf, o) in open.into_iter().enumerate() {
        if let Some((p, left)) = o.parent {
            if left {
                children[p].0 = !(leaf as i32)
            } else {
                children[p].1 = !(leaf as i32)
            }
        }
        tree.leaf_value
            .push(((rng() % 2001) as f64 - 1000.0) / 997.0);
        tree.leaf_count.push(o.count);
    }
    tree.left_child = children.iter().map(|c| c.0).collect();
    tree.right_child = children.iter().map(|c| c.1).collect();
    tree
}

fn model(trees: Vec<Tree>, m: usize) -> Model {
    let model = Model {
        trees,
        feature_names: (0..m).map(|i| format!("f{i}")).collect(),
        feature_kinds: vec![FeatureKind::Numeric; m],
        sigmoid: 1.0,
        best_iteration: None,
    };
    model.validate().expect("random trees are well formed");
    model
}

fn random_row(rng: &mut impl FnMut() -> u64, m: usize) -> Vec<f64> {
    (0..m)
        .map(|_| match rng() % 9 {
            0 => f64::NAN,
            1 => 0.0,
            2 => -0.0,
            3 => 1e-36,
            _ => (rng() % 9) as f64 - 4.0 + if rng().is_multiple_of(2) { 0.5 } else { 0.0 },
        })
        .collect()
}

fn splitmix(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/shap.proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn fast_treeshap_equals_the_shapley_definition(seed in any::<u64>(), m in 1usize..7, leaves in 1usize..14, trees in 1usize..4) {
        let mut rng = splitmix(seed);
        let model = model((0..trees).map(|_| random_tree(&mut rng, m, leaves, false)).collect(), m);
        let explainer = Explainer::new(&model);
        for _ in 0..4 {
            let row = random_row(&mut rng, m);
            let fast = explainer.contributions(&row);
            let exact = brute_force(&model, &row);
            let reference = reference_contributions(&model, &row);
            for j in 0..=m {
                prop_assert!((fast[j] - exact[j]).abs() <= 1e-12 * (1.0 + exact[j].abs()), "feature {j}: fast {} exact {}", fast[j], exact[j]);
                prop_assert!((reference[j] - exact[j]).abs() <= 1e-9 * (1.0 + exact[j].abs()), "feature {j}: reference {} exact {}", reference[j], exact[j]);
            }
            let margin = model.predict_raw(&row);
            let total: f64 = fast.iter().sum();
            prop_assert!((total - margin).abs() <= 1e-12 * (1.0 + margin.abs()), "sum {total} margin {margin}");
        }
    }

    #[test]
    fn lookup_blocks_and_integration_agree_with_the_reference(seed in any::<u64>(), m in 1usize..14, leaves in 1usize..72, trees in 1usize..4) {
        // Up to 13 features and 71 leaves: blocks, leaves too wide for any block
        // (integrated per row) and trees past 63 internal nodes (no blocks) mix.
        let mut rng = splitmix(seed);
        let model = model((0..trees).map(|_| random_tree(&mut rng, m, leaves, false)).collect(), m);
        let explainers = [
            Explainer::with_table_budget(&model, 0),
            Explainer::with_table_budget(&model, 16 << 10),
            Explainer::new(&model),
        ];
        prop_assert_eq!(explainers[0].table_bytes(), 0);
        if leaves > 1 && leaves < 64 {
            prop_assert!(explainers[2].table_bytes() > 0, "no lookup blocks were built");
        }
        for _ in 0..4 {
            let row = random_row(&mut rng, m);
            let reference = reference_contributions(&model, &row);
            let margin = model.predict_raw(&row);
            for explainer in &explainers {
                let fast = explainer.contributions(&row);
                for j in 0..=m {
                    prop_assert!((fast[j] - reference[j]).abs() <= 1e-9 * (1.0 + reference[j].abs()),
                        "budget {} bytes, feature {j}: fast {} reference {}", explainer.table_bytes(), fast[j], reference[j]);
                }
                let total: f64 = fast.iter().sum();
                prop_assert!((total - margin).abs() <= 1e-9 * (1.0 + margin.abs()), "sum {total} margin {margin}");
            }
        }
    }

    #[test]
    fn the_compiled_predictor_equals_walking_every_tree(seed in any::<u64>(), m in 1usize..6, leaves in 1usize..80, trees in 1usize..6, long_bitsets in any::<bool>()) {
        // Trees past 64 leaves are walked, the others scored from sorted node
        // lists; categorical bitsets padded past 2^20 (category, node) pairs
        // are decided node by node instead of listed per category.
        let mut rng = splitmix(seed);
        let mut trees: Vec<Tree> = (0..trees).map(|_| random_tree(&mut rng, m, leaves, false)).collect();
        if long_bitsets {
            for split in trees.iter_mut().flat_map(|t| t.split.iter_mut()) {
                if let Split::Categorical { bitset } = split {
                    bitset.resize(40_000, 0);
                }
            }
        }
        let model = model(trees, m);
        let predictor = Predictor::new(&model);
        let mut rows = Vec::new();
        for _ in 0..16 {
            let mut row = random_row(&mut rng, m);
            if let Some(x) = row.get_mut((rng() % m as u64) as usize) {
                *x = [1e10, -1e10, f64::INFINITY, 31.0, 32.0, 7.999][(rng() % 6) as usize];
            }
            rows.push(row);
        }
        let batch = predictor.predict_raw_batch(&rows.concat()).expect("shape");
        for (row, batched) in rows.iter().zip(&batch) {
            let walked = model.predict_raw(row);
            prop_assert_eq!(predictor.predict_raw(row).to_bits(), walked.to_bits(), "row {:?}", row);
            prop_assert_eq!(batched.to_bits(), walked.to_bits());
        }
    }

    #[test]
    fn empty_children_stay_finite_and_efficient(seed in any::<u64>(), leaves in 2usize..12) {
        let mut rng = splitmix(seed);
        let model = model(vec![random_tree(&mut rng, 4, leaves, true)], 4);
        let row = random_row(&mut rng, 4);
        let integrated = Explainer::with_table_budget(&model, 0).contributions(&row);
        let phi = Explainer::new(&model).contributions(&row);
        prop_assert!(phi.iter().all(|v| v.is_finite()));
        let total: f64 = phi.iter().sum();
        prop_assert!((total - model.predict_raw(&row)).abs() <= 1e-12 * (1.0 + total.abs()));
        for (a, b) in phi.iter().zip(&integrated) {
            prop_assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "looked up {a} integrated {b}");
        }
    }
}

#[test]
fn deep_trees_use_high_quadrature_orders_exactly() {
    // A chain of 24 splits on 24 distinct features: d = 24, Q = 12.
    let mut rng = splitmix(7);
    let m = 24;
    let mut tree = random_tree(&mut rng, 1, 2, false);
    tree.split_feature.clear();
    tree.split.clear();
    tree.split_gain.clear();
    tree.left_child.clear();
    tree.right_child.clear();
    tree.internal_count.clear();
    tree.leaf_value.clear();
    tree.leaf_count.clear();
    let mut count = 1_000_000.0;
    for node in 0..m {
        tree.split_feature.push(node as u32);
        tree.split.push(Split::Numeric {
            threshold: 0.0,
            default_left: false,
            missing: MissingType::NaN,
        });
        tree.split_gain.push(1.0);
        tree.internal_count.push(count);
        let leaf_count = (count * 0.3f64).floor();
        tree.left_child.push(!(node as i32));
        tree.right_child.push(if node + 1 < m {
            node as i32 + 1
        } else {
            !(m as i32)
        });
        tree.leaf_value.push(node as f64 * 0.1 - 1.0);
        tree.leaf_count.push(leaf_count);
        count -= leaf_count;
    }
    tree.leaf_value.push(3.0);
    tree.leaf_count.push(count);
    let model = model(vec![tree], m);
    let explainer = Explainer::new(&model);
    let row: Vec<f64> = (0..m)
        .map(|j| if j % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let fast = explainer.contributions(&row);
    let reference = reference_contributions(&model, &row);
    for j in 0..=m {
        assert!(
            (fast[j] - reference[j]).abs() <= 1e-10 * (1.0 + reference[j].abs()),
            "feature {j}: {} vs {}",
            fast[j],
            reference[j]
        );
    }
    let total: f64 = fast.iter().sum();
    assert!((total - model.predict_raw(&row)).abs() < 1e-12);
}

#[test]
fn trees_past_64_internal_nodes_take_the_general_path_exactly() {
    // Hot flags use a 64-bit mask up to 64 internal nodes; larger trees fall back.
    let mut rng = splitmix(99);
    for leaves in [66, 80, 100] {
        let model = model(vec![random_tree(&mut rng, 5, leaves, false)], 5);
        let explainer = Explainer::new(&model);
        for _ in 0..20 {
            let row = random_row(&mut rng, 5);
            let fast = explainer.contributions(&row);
            let exact = brute_force(&model, &row);
            for j in 0..=5 {
                assert!(
                    (fast[j] - exact[j]).abs() <= 1e-12 * (1.0 + exact[j].abs()),
                    "{leaves} leaves, feature {j}: fast {} exact {}",
                    fast[j],
                    exact[j]
                );
            }
        }
    }
}
