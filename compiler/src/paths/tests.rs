use super::*;
use crate::rng::Rng;

/// A network from einsum-like terms (`"ij,jk"`, `"il"`) and extents per letter.
fn net(inputs: &str, output: &str, extents: &[(char, u64)]) -> Network {
    let bit = |c: char| -> IndexSet {
        let k = extents
            .iter()
            .position(|&(l, _)| l == c)
            .unwrap_or_else(|| panic!("no extent for {c}"));
        1 << k
    };
    Network {
        inputs: inputs
            .split(',')
            .map(|t| t.chars().fold(0, |a, c| a | bit(c)))
            .collect(),
        output: output.chars().fold(0, |a, c| a | bit(c)),
        sizes: extents.iter().map(|&(_, n)| n).collect(),
    }
}

fn opts(algorithm: Algorithm) -> PathOptions {
    PathOptions {
        algorithm,
        memory_limit: None,
    }
}

#[test]
fn the_chain_of_the_reference_chapter_multiplies_the_small_pair_first() {
    // Section 4.4 / Exercise 5: A (1000x10), B (10x1000), C (1000x10).
    let n = net(
        "ij,jk,kl",
        "il",
        &[('i', 1000), ('j', 10), ('k', 1000), ('l', 10)],
    );
    for a in Algorithm::ALL {
        let p = plan(&n, &opts(a));
        // B·C first (10x10, 2·10^5 FLOPs), then A·(BC) (2·10^5): 4·10^5 in all, against
        // 4·10^7 for (AB)·C and 3·10^8 for the naive nest (10^8 points, three operands).
        assert_eq!(p.linear_path(3), [vec![1, 2], vec![0, 1]], "{a:?}");
        let ssa: Vec<Vec<usize>> = p.steps.iter().map(|s| s.operands.clone()).collect();
        assert_eq!(ssa_path(&p.linear_path(3), 3), Some(ssa), "{a:?}");
        assert_eq!(p.opt_flops, 400_000, "{a:?}");
        assert_eq!(p.naive_flops, 300_000_000, "{a:?}");
        assert_eq!(p.largest_intermediate, 10_000, "{a:?}");
        assert_eq!(
            p.steps.iter().map(|s| s.flops).collect::<Vec<_>>(),
            [200_000, 200_000]
        );
    }
    // The other shapes of the section: now (AB)·C is the cheap order.
    let n = net(
        "ij,jk,kl",
        "il",
        &[('i', 10), ('j', 1000), ('k', 10), ('l', 1000)],
    );
    let p = plan(&n, &opts(Algorithm::Auto));
    assert_eq!(p.linear_path(3), [vec![0, 1], vec![0, 1]]);
    assert_eq!(p.opt_flops, 2 * 10 * 1000 * 10 + 2 * 10 * 10 * 1000);
}

#[test]
fn single_operand_sums_come_first_and_count_twice_their_size() {
    // A trace and an index only B carries: each summed out of its operand alone.
    let n = net("ii,ijk", "j", &[('i', 4), ('j', 5), ('k', 6)]);
    let p = plan(&n, &opts(Algorithm::Auto));
    assert_eq!(p.linear_path(2), [vec![1], vec![0, 1]]);
    assert_eq!(p.steps[0].summed, 1 << 2);
    assert_eq!(p.steps[0].flops, 2 * 4 * 5 * 6);
    // `ii` keeps `i` (B still needs it): no single-operand work there.
    assert_eq!(p.steps[1].flops, 2 * 4 * 5);
    // One operand alone: its sum is the whole plan. (opt_einsum counts the naive cost of one
    // operand without the additions, since no index is shared: 6 against 12.)
    let one = net("ij", "", &[('i', 3), ('j', 2)]);
    let p = plan(&one, &opts(Algorithm::Auto));
    assert_eq!(p.linear_path(1), [vec![0]]);
    assert_eq!((p.opt_flops, p.naive_flops), (12, 6));
}

#[test]
fn the_memory_limit_is_honoured_or_the_smallest_feasible_one_is_reported() {
    let n = net(
        "ij,jk,kl",
        "il",
        &[('i', 1000), ('j', 10), ('k', 1000), ('l', 10)],
    );
    // The cheap path's largest result is the 1000x10 output; 10^4 is enough.
    let limited = |limit| {
        plan(
            &n,
            &PathOptions {
                algorithm: Algorithm::Auto,
                memory_limit: Some(limit),
            },
        )
    };
    let p = limited(10_000);
    assert_eq!(p.memory, None);
    assert_eq!(p.linear_path(3), [vec![1, 2], vec![0, 1]]);
    // Below the output's size nothing can meet it: the smallest feasible limit is reported.
    let p = limited(500);
    assert_eq!(
        p.memory,
        Some(MemoryShortfall {
            asked: 500,
            smallest: 10_000
        })
    );
    assert_eq!(p.steps_over(500), [1]);
}

#[test]
fn a_limit_between_the_smallest_feasible_and_the_free_peak_changes_the_path() {
    let mut rng = Rng::new(11);
    let mut exercised = 0;
    for round in 0..80 {
        let net = random_network(&mut rng, 3 + round % 5);
        let smallest = dp::min_peak(&net.inputs, net.output, &net.sizes);
        let exact = plan(&net, &opts(Algorithm::Optimal)).opt_flops;
        for a in Algorithm::ALL {
            let free = plan(&net, &opts(a));
            if free.largest_intermediate <= smallest {
                continue;
            }
            exercised += 1;
            let limit = free.largest_intermediate - 1;
            let tight = plan(
                &net,
                &PathOptions {
                    algorithm: a,
                    memory_limit: Some(limit),
                },
            );
            check_valid(&net, &tight);
            assert_eq!(tight.memory, None, "{a:?}: {net:?}");
            assert!(tight.largest_intermediate <= limit, "{a:?}: {net:?}");
            assert!(tight.opt_flops >= exact, "{a:?}: {net:?}");
            // Below the smallest feasible limit: planned with that one, and reported.
            let short = plan(
                &net,
                &PathOptions {
                    algorithm: a,
                    memory_limit: Some(smallest - 1),
                },
            );
            check_valid(&net, &short);
            assert_eq!(
                short.memory,
                Some(MemoryShortfall {
                    asked: smallest - 1,
                    smallest
                }),
                "{a:?}"
            );
            assert!(!short.steps_over(smallest - 1).is_empty());
        }
    }
    assert!(exercised > 20, "only {exercised} cases had a limit to test");
}

/// A random connected network: each operand gets 1–3 indices shared with earlier operands and
/// sometimes an output index; extents 2–6.
fn random_network(rng: &mut Rng, n: usize) -> Network {
    let mut inputs: Vec<IndexSet> = vec![0; n];
    let mut sizes = Vec::new();
    let mut output = 0;
    let fresh = |sizes: &mut Vec<u64>, rng: &mut Rng| {
        sizes.push(2 + rng.below(5) as u64);
        1u128 << (sizes.len() - 1)
    };
    for k in 1..n {
        for _ in 0..1 + rng.below(3) {
            let other = rng.below(k);
            let i = fresh(&mut sizes, rng);
            inputs[k] |= i;
            inputs[other] |= i;
        }
    }
    for input in inputs.iter_mut() {
        if rng.below(3) == 0 {
            let i = fresh(&mut sizes, rng);
            *input |= i;
            output |= i;
        }
    }
    Network {
        inputs,
        output,
        sizes,
    }
}

/// Checks that `p` is a path of `net`: every operand used once, the last result the output.
fn check_valid(net: &Network, p: &Plan) {
    let n = net.inputs.len();
    let mut used = vec![false; n + p.steps.len()];
    for (k, s) in p.steps.iter().enumerate() {
        for &o in &s.operands {
            assert!(o < n + k, "step {k} reads a later result");
            assert!(!used[o], "operand {o} used twice");
            used[o] = true;
        }
    }
    assert_eq!(used.iter().filter(|u| !**u).count(), 1, "{p:?}");
    assert_eq!(p.steps.last().map(|s| s.result), Some(net.output));
}

#[test]
fn exact_searches_agree_and_the_others_are_never_better() {
    let mut rng = Rng::new(7);
    for round in 0..60 {
        let n = 2 + round % 7;
        let net = random_network(&mut rng, n);
        let exact = plan(&net, &opts(Algorithm::Optimal));
        check_valid(&net, &exact);
        let all = evaluate(
            &net,
            dp::dp_all(&net.inputs, net.output, &net.sizes, None)
                .unwrap()
                .into_iter()
                .map(|(a, b)| vec![a, b])
                .collect(),
            None,
        );
        assert_eq!(all.opt_flops, exact.opt_flops, "round {round}: {net:?}");
        for a in [Algorithm::Auto, Algorithm::Dp, Algorithm::Greedy] {
            let p = plan(&net, &opts(a));
            check_valid(&net, &p);
            assert!(
                p.opt_flops >= exact.opt_flops,
                "{a:?} beats optimal: {net:?}"
            );
        }
        assert_eq!(
            plan(&net, &opts(Algorithm::Auto)).opt_flops,
            exact.opt_flops
        );
    }
}

#[test]
fn disconnected_operands_are_joined_after_their_components() {
    // Two matrix products sharing nothing, and a scalar.
    let n = net(
        "ij,jk,ab,bc,",
        "ikac",
        &[('i', 2), ('j', 3), ('k', 4), ('a', 5), ('b', 6), ('c', 7)],
    );
    for a in Algorithm::ALL {
        let p = plan(&n, &opts(a));
        check_valid(&n, &p);
    }
    // `dp` joins whole components, so it may miss an earlier outer product with the scalar;
    // `auto` searches every tree at this size.
    let exact = plan(&n, &opts(Algorithm::Optimal)).opt_flops;
    assert_eq!(plan(&n, &opts(Algorithm::Auto)).opt_flops, exact);
    let dp = plan(&n, &opts(Algorithm::Dp)).opt_flops;
    assert!(dp >= exact && dp <= plan(&n, &opts(Algorithm::Greedy)).opt_flops);
}

#[test]
fn long_chains_are_planned_by_dp_and_greedy_beyond_it() {
    // A chain of 24 matrices: more than `dp` takes, so `auto` is greedy; a chain of 16 is
    // within `dp`, which beats or matches greedy.
    for (len, algorithm) in [(16, Algorithm::Dp), (24, Algorithm::Auto)] {
        let letters: Vec<char> = ('a'..='z').collect();
        let terms: Vec<String> = (0..len)
            .map(|k| format!("{}{}", letters[k], letters[k + 1]))
            .collect();
        let extents: Vec<(char, u64)> = (0..=len)
            .map(|k| (letters[k], 2 + (k as u64 * 7) % 5))
            .collect();
        let out = format!("{}{}", letters[0], letters[len]);
        let n = net(&terms.join(","), &out, &extents);
        let p = plan(&n, &opts(algorithm));
        check_valid(&n, &p);
        assert!(p.opt_flops <= plan(&n, &opts(Algorithm::Greedy)).opt_flops);
        assert!(p.opt_flops < p.naive_flops);
        // Every algorithm finds a complete path at any size (beyond its reach, greedily).
        for a in [Algorithm::Optimal, Algorithm::Dp] {
            check_valid(&n, &plan(&n, &opts(a)));
        }
    }
}

#[test]
fn formulas_multiply_known_extents_into_the_coefficient() {
    let f = cost::Formula::step(&[Ok(3), Err("T".into()), Err("K".into())], 2, true);
    assert_eq!(f.to_string(), "6*T*K");
    assert_eq!(
        cost::Formula::step(&[Err("T".into())], 2, false).to_string(),
        "T"
    );
    assert_eq!(cost::Formula::step(&[Ok(5)], 3, true).to_string(), "15");
    // A dim that occurs several times is written with its power, in order of first occurrence.
    let dims: Vec<Result<u64, String>> = (0..16)
        .map(|k| Err(if k % 8 < 3 { "P" } else { "X" }.to_string()))
        .collect();
    assert_eq!(cost::Formula::step(&dims, 2, false).to_string(), "P^6*X^10");
    assert_eq!(
        cost::Formula::step(&[Err("T".into()), Ok(2), Err("T".into())], 1, false).to_string(),
        "2*T^2"
    );
    assert_eq!(Algorithm::parse("dp"), Some(Algorithm::Dp));
    assert_eq!(Algorithm::parse("best"), None);
    assert_eq!(ssa_path(&[vec![0, 3]], 3), None);
    assert_eq!(ssa_path(&[vec![1, 1]], 3), None);
}
