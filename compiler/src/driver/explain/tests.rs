use super::*;
use crate::paths::Algorithm;

fn paths(algorithm: Algorithm, memory_limit: Option<u128>) -> PathOptions {
    PathOptions {
        algorithm,
        memory_limit,
    }
}

fn text(subscripts: &str, shapes: Option<&str>) -> String {
    explain_subscripts(subscripts, shapes, &PathOptions::default(), Format::Text).unwrap()
}

#[test]
fn matmul_table_and_its_one_step() {
    let t = text("ij,jk->ik", Some("3x4,4x5"));
    let want = "\
einsum \"ij,jk->ik\" (explicit output)

index  role            extent  operand axes
i      free            3       #0[0]
k      free            5       #1[1]
j      dummy (summed)  4       #0[1], #1[0]

operand #0:  [3, 4]
operand #1:  [4, 5]
result:      [3, 5]

path (optimize=auto, memory limit none):
  step  operands  subscripts  FLOPs  intermediate
  1     [0, 1]    ij,jk->ik   120    15
naive FLOPs:           120
optimised FLOPs:       120
speed-up:              1.0000x
largest intermediate:  15 elements
";
    assert_eq!(t, want);
}

#[test]
fn the_chapter_chain_is_planned_as_the_chapter_says() {
    // Section 4.4 and Exercise 5: (1000x10)(10x1000)(1000x10): B·C first.
    let t = text("ij,jk,kl->il", Some("1000x10,10x1000,1000x10"));
    // Intermediates are laid out in the op's index order (free indices first).
    assert!(
        t.contains("  1     [1, 2]    jk,kl->lj   200000  100\n"),
        "{t}"
    );
    assert!(
        t.contains("  2     [0, 1]    ij,lj->il   200000  10000\n"),
        "{t}"
    );
    assert!(t.contains("naive FLOPs:           300000000\n"), "{t}");
    assert!(t.contains("optimised FLOPs:       400000\n"), "{t}");
    assert!(t.contains("speed-up:              750.0000x\n"), "{t}");
    let json = explain_subscripts(
        "ij,jk,kl->il",
        Some("1000x10,10x1000,1000x10"),
        &PathOptions::default(),
        Format::Json,
    )
    .unwrap();
    assert!(
        json.starts_with(
            "{\"subscripts\": \"ij,jk,kl->il\", \"path\": [[1, 2], [0, 1]], \
             \"naive_flops\": 300000000, \"opt_flops\": 400000, \"speedup\": 750.0, \
             \"largest_intermediate\": 10000, \"memory_limit\": null, \
             \"smallest_feasible_limit\": null, \"steps\": [{\"operands\": [1, 2], \
             \"subscripts\": \"jk,kl->lj\", \"flops\": 200000, \"size\": 100, \
             \"over_limit\": false}, "
        ),
        "{json}"
    );
    assert!(json.ends_with("\"assumed_extents\": {}}\n"), "{json}");
}

#[test]
fn symbolic_extents_show_formulas_and_say_what_was_assumed() {
    let t = text("ij,jk,kl->il", None);
    assert!(t.contains("naive FLOPs:           3*i*l*j*k\n"), "{t}");
    assert!(
        t.contains("optimised FLOPs:       2*i*j*k + 2*i*l*k\n"),
        "{t}"
    );
    assert!(
        t.contains("  1     [0, 1]    ij,jk->ik   2*i*j*k  i*k\n"),
        "{t}"
    );
    assert!(
        t.contains("the path was chosen as if i, j, k, l were 1000 each"),
        "{t}"
    );
    let t = text("ij,jk->ij", None);
    assert!(
        t.contains("note: `k` is summed but appears in only one operand"),
        "{t}"
    );
    // The sum over k happens in operand 1 alone, first.
    assert!(t.contains("  1     [1]       jk->j"), "{t}");
}

#[test]
fn an_unmeetable_memory_limit_is_reported_with_the_smallest_that_works() {
    let t = explain_subscripts(
        "ij,jk,kl->il",
        Some("1000x10,10x1000,1000x10"),
        &paths(Algorithm::Dp, Some(500)),
        Format::Text,
    )
    .unwrap();
    assert!(
        t.contains("path (optimize=dp, memory limit 500 elements):"),
        "{t}"
    );
    assert!(t.contains("10000  (over the limit)\n"), "{t}");
    assert!(
        t.contains(
            "memory limit:          500 elements cannot be met: every path has an intermediate \
             of at least 10000 elements (the result itself), so the path was planned with that \
             limit"
        ),
        "{t}"
    );
    let json = explain_subscripts(
        "ij,jk,kl->il",
        Some("1000x10,10x1000,1000x10"),
        &paths(Algorithm::Dp, Some(500)),
        Format::Json,
    )
    .unwrap();
    assert!(
        json.contains("\"memory_limit\": 500, \"smallest_feasible_limit\": 10000"),
        "{json}"
    );
}

#[test]
fn broadcast_axes_scalars_and_ellipses_are_shown() {
    let t = text("ij,ij->j", Some("7x2,1x2"));
    assert!(
        t.contains("i      dummy (summed)  7       #0[0], #1[0] (size 1, broadcast)\n"),
        "{t}"
    );
    let t = text(",i->i", Some(",5"));
    assert!(t.contains("operand #0:  []\n"), "{t}");
    let t = text("...ij,...jk->...ik", Some("2x3x4,4x5"));
    // The ellipsis dim gets a letter of its own in the step subscripts.
    assert!(t.contains("aij,jk->aik"), "{t}");
}

#[test]
fn errors_show_the_subscripts_with_a_caret() {
    let err = explain_subscripts(
        "ij,jk->iki",
        Some("2x3,3x4"),
        &PathOptions::default(),
        Format::Text,
    )
    .unwrap_err();
    assert_eq!(
        err,
        "output label `i` appears more than once\n  | ij,jk->iki\n  |          ^"
    );
    let err =
        explain_subscripts("ij", Some("2xq-1"), &PathOptions::default(), Format::Text).unwrap_err();
    assert!(err.starts_with("--shapes: \"q-1\""), "{err}");
}

#[test]
fn kernels_show_classes_and_paths_of_their_products() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tucker.ein"
    ))
    .unwrap();
    let m = crate::sema::compile_source(&text).0.unwrap();
    let single = Module {
        dims: m.dims.clone(),
        funcs: vec![m.func("tucker").unwrap().clone()],
    };
    let opts = CompileOptions {
        dims: [
            ("I", 64),
            ("J", 64),
            ("K", 64),
            ("P", 16),
            ("Q", 16),
            ("S", 16),
        ]
        .into_iter()
        .map(|(d, n)| (d.to_string(), n))
        .collect(),
        ..CompileOptions::default()
    };
    let t = explain_kernel(single.clone(), &opts, Format::Text).unwrap();
    assert!(t.starts_with("kernel tucker\n"), "{t}");
    assert!(t.contains("class:   reduction (add) over [a, b, c]"), "{t}");
    // opt_einsum: naive 4294967296, optimal 11010048, largest intermediate 262144.
    assert!(t.contains("naive FLOPs:           4294967296\n"), "{t}");
    assert!(t.contains("optimised FLOPs:       11010048\n"), "{t}");
    assert!(
        t.contains("largest intermediate:  262144 elements\n"),
        "{t}"
    );
    let json = explain_kernel(single, &opts, Format::Json).unwrap();
    assert!(
        json.starts_with(
            "{\"kernel\": \"tucker\", \"ops\": [{\"value\": \"T\", \"class\": \"reduction\""
        ),
        "{json}"
    );
}
