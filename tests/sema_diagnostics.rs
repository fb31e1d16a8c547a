//! Semantic errors, warnings and notes of `.ein` programs: each asserted on its message and on
//! the line:col of its primary label (and of its secondary labels where both places matter).
//! Positions are computed here from the source text, independently of the compiler.

// Helpers outside #[test] functions unwrap too: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use einc_compiler::diag::{Diagnostic, Severity};
use einc_compiler::ir::tensor::printer::print_module;
use einc_compiler::ir::tensor::verify::verify_module;
use einc_compiler::sema::compile_source;

/// Line and column (1-based, in characters) of byte offset `at` of `src`.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let (mut line, mut col) = (1, 1);
    for (k, c) in src.char_indices() {
        if k == at {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    (line, col)
}

/// Position of the `nth` (0-based) occurrence of `needle`, plus `skip` bytes into it.
fn pos(src: &str, needle: &str, nth: usize, skip: usize) -> (usize, usize) {
    let at = src
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` #{nth} not in source"))
        .0;
    line_col(src, at + skip)
}

fn all(src: &str) -> Vec<Diagnostic> {
    let (module, diags) = compile_source(src);
    assert_eq!(
        module.is_some(),
        !diags.iter().any(Diagnostic::is_error),
        "a module is returned exactly when there are no errors"
    );
    diags
}

fn errors(src: &str) -> Vec<Diagnostic> {
    all(src).into_iter().filter(Diagnostic::is_error).collect()
}

/// The only error of `src`.
fn one_error(src: &str) -> Diagnostic {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    e.into_iter().next().unwrap()
}

fn at(src: &str, d: &Diagnostic) -> (usize, usize) {
    line_col(src, d.primary.span.start as usize)
}

fn secondary_at(src: &str, d: &Diagnostic) -> Vec<(usize, usize)> {
    d.secondary
        .iter()
        .map(|l| line_col(src, l.span.start as usize))
        .collect()
}

fn ir(src: &str) -> String {
    let (module, diags) = compile_source(src);
    let module = module.unwrap_or_else(|| panic!("{diags:#?}"));
    verify_module(&module).unwrap();
    print_module(&module)
}

// ----- the table of LANGUAGE.md ----------------------------------------------------------------

#[test]
fn index_free_on_the_right_only() {
    let src = "dims I, J, K\n\
               kernel f(A: f32[I, J], B: f32[J, K]) -> (C: f32[I, J]) {\n    \
               C[i, j] = A[i, j] * B[j, k]\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "index `k` is free on the right but not on the left"
    );
    assert_eq!(at(src, &d), pos(src, "k]", 0, 0));
    assert_eq!(at(src, &d), (3, 30));
    assert_eq!(
        d.help.as_deref(),
        Some("write sum[k](...) to reduce over k, or add k to the left-hand side")
    );
}

#[test]
fn index_only_on_the_left_and_index_only_on_the_right_are_both_reported() {
    let src = "dims N\n\
               kernel f(A: f32[N, N], u: f32[N]) -> (v: f32[N]) {\n    \
               v[i] = A[j, k] * u[k]\n}\n";
    let e = errors(src);
    let messages: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "index `i` is not on the right-hand side",
            "index `j` is free on the right but not on the left"
        ]
    );
    assert_eq!(at(src, &e[0]), (3, 7));
    assert_eq!(at(src, &e[1]), (3, 14));
}

#[test]
fn fixed_extent_mismatch_shows_both_places() {
    let src = "kernel f(A: f32[3, 4], B: f32[5, 2]) -> (C: f32[3, 2]) {\n    \
               C[i, k] = A[i, j] * B[j, k]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`j` is 4 in `A` but 5 in `B`");
    assert_eq!(at(src, &d), pos(src, "j, k]", 0, 0));
    assert_eq!(at(src, &d), (2, 27));
    assert_eq!(secondary_at(src, &d), [pos(src, "j]", 0, 0)]);
    assert_eq!(secondary_at(src, &d), [(2, 20)]);
    assert_eq!(d.primary.message, "`j` is 5 here");
    assert_eq!(d.secondary[0].message, "`j` is 4 here");
}

#[test]
fn output_index_cannot_repeat() {
    let src = "dims N\n\
               kernel f(A: f32[N, N]) -> (C: f32[N, N]) {\n    C[i, i] = A[i, j]\n}\n";
    let e = errors(src);
    assert_eq!(
        e[0].message,
        "an output index cannot repeat: `i` appears twice on the left"
    );
    assert_eq!(at(src, &e[0]), (3, 10));
    assert_eq!(secondary_at(src, &e[0]), [(3, 7)]);
}

#[test]
fn einsum_summing_an_index_alone_is_valid_with_a_note() {
    let src = "dims I, J, K\n\
               kernel f(A: f32[I, J], B: f32[J, K]) -> (C: f32[I, J]) {\n    \
               C = einsum(\"ij,jk->ij\", A, B)\n}\n";
    let d = all(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].severity, Severity::Note);
    assert!(d[0].message.contains("`k` is summed"), "{}", d[0].message);
    assert!(d[0].message.contains("not a matmul"), "{}", d[0].message);
    // The note points at the `k` inside the string literal.
    assert_eq!(at(src, &d[0]), pos(src, "k->", 0, 0));
}

#[test]
fn three_occurrences_are_summed_with_a_note() {
    let src = "dims N\n\
               kernel f(A: f32[N], B: f32[N], C: f32[N]) -> (t: f32) {\n    \
               t = A[i] * B[i] * C[i]\n}\n";
    let d = all(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].severity, Severity::Note);
    assert_eq!(
        d[0].message,
        "Einstein's convention expects pairs; `i` appears 3 times and is summed"
    );
    assert_eq!(at(src, &d[0]), (3, 9));
    assert!(ir(src).contains("reduce add over (i) { mul(mul(%0, %1), %2) }"));
}

// ----- dims ------------------------------------------------------------------------------------

#[test]
fn dim_declared_twice_shows_both() {
    let src = "dims N, M\ndims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "dim `N` is declared twice");
    assert_eq!(at(src, &d), (2, 6));
    assert_eq!(secondary_at(src, &d), [(1, 6)]);
}

#[test]
fn undeclared_dim_has_a_hint() {
    let src = "dims N\nkernel f(A: f32[N, Q]) -> (B: f32[N]) {\n    B[i] = A[i, 0]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "undeclared dim `Q`");
    assert_eq!(at(src, &d), (2, 20));
    assert_eq!(
        d.help.as_deref(),
        Some("declare it at the top of the file: `dims Q`")
    );
}

#[test]
fn fixed_dims_equal_literal_extents() {
    let ok =
        "dims N = 3\nkernel f(A: f32[N], B: f32[3]) -> (C: f32[N]) {\n    C[i] = A[i] + B[i]\n}\n";
    assert!(all(ok).is_empty());
    let bad =
        "dims N = 3\nkernel f(A: f32[N], B: f32[4]) -> (C: f32[N]) {\n    C[i] = A[i] + B[i]\n}\n";
    let d = one_error(bad);
    assert_eq!(d.message, "`i` has extent N (= 3) in `A` but 4 in `B`");
    assert_eq!(at(bad, &d), (3, 21));
    assert_eq!(secondary_at(bad, &d), [(3, 14)]);
}

#[test]
fn symbolic_extent_mismatch_names_both_dims() {
    let src = "dims I, D, K\n\
               kernel f(A: f32[I, D], B: f32[K, I]) -> (C: f32[I, I]) {\n    \
               C[i, k] = A[i, j] * B[j, k]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`j` has extent D in `A` but K in `B`");
    assert_eq!(at(src, &d), (3, 27));
    assert_eq!(secondary_at(src, &d), [(3, 20)]);
}

#[test]
fn extent_must_match_the_declared_output_shape() {
    let src = "dims I, J\nkernel f(A: f32[I, J]) -> (B: f32[J, I]) {\n    B[i, j] = A[i, j]\n}\n";
    let e = errors(src);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(e[0].message, "`i` has extent I in `A` but J in `B`");
    assert_eq!(at(src, &e[0]), (3, 7));
    assert_eq!(secondary_at(src, &e[0]), [(3, 17)]);
    assert_eq!(e[1].message, "`j` has extent J in `A` but I in `B`");
}

// ----- tensors ---------------------------------------------------------------------------------

#[test]
fn redefinition_shows_both() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    S[i] = A[i]\n    S[i] = A[i]\n    B[i] = S[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`S` is defined twice");
    assert_eq!(at(src, &d), (4, 5));
    assert_eq!(secondary_at(src, &d), [(3, 5)]);
}

#[test]
fn parameters_cannot_be_assigned() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    A[i] = A[i]\n    B[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "cannot assign to parameter `A`");
    assert_eq!(at(src, &d), (3, 5));
    assert_eq!(secondary_at(src, &d), [(2, 10)]);
}

#[test]
fn use_before_definition() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = S[i]\n    S[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`S` is used before its definition");
    assert_eq!(at(src, &d), (3, 12));
    assert_eq!(secondary_at(src, &d), [(4, 5)]);
}

#[test]
fn unassigned_output_is_reported_at_its_declaration() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N], C: f32) {\n    B[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "output `C` is never assigned");
    assert_eq!(at(src, &d), pos(src, "C: f32", 0, 0));
}

#[test]
fn dims_and_tensors_share_one_namespace() {
    let src = "dims N\nkernel f(N: f32[3]) -> (B: f32[3]) {\n    B[i] = N[i]\n}\n";
    let d = errors(src);
    assert_eq!(
        d[0].message,
        "`N` is a dim, so it cannot also name a tensor"
    );
    assert_eq!(at(src, &d[0]), (2, 10));
    assert_eq!(secondary_at(src, &d[0]), [(1, 6)]);
}

#[test]
fn builtin_and_function_names_are_reserved() {
    let src =
        "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    exp[i] = A[i]\n    B[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`exp` is reserved and cannot name a tensor");
    assert_eq!(at(src, &d), (3, 5));
    let src = "dims delta\nkernel f(A: f32[3]) -> (B: f32[3]) {\n    B[i] = A[i]\n}\n";
    assert_eq!(
        one_error(src).message,
        "`delta` is reserved and cannot name a dim"
    );
}

#[test]
fn output_rank_must_match_its_left_side() {
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N, N]) {\n    B[i] = A[i, i]\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "`B` has rank 2 but the left-hand side has 1 index"
    );
    assert_eq!(at(src, &d), (3, 5));
}

#[test]
fn left_side_takes_no_fixed_positions() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[0] = A[0]\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "the left-hand side takes index variables, not positions"
    );
    assert_eq!(at(src, &d), (3, 7));
}

// ----- accesses and reductions -----------------------------------------------------------------

#[test]
fn access_rank_must_match_the_declaration() {
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N]) {\n    B[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`A` has rank 2 but is indexed with 1 index");
    assert_eq!(at(src, &d), (3, 12));
    assert_eq!(secondary_at(src, &d), [(2, 10)]);
}

#[test]
fn fixed_position_must_be_in_range() {
    let src = "kernel f(A: f32[2, 4]) -> (B: f32[4]) {\n    B[i] = A[2, i]\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "position 2 is out of range for axis 0 of `A`, whose extent is 2"
    );
    assert_eq!(at(src, &d), (2, 14));
}

#[test]
fn reduction_index_must_occur_and_not_be_on_the_left() {
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N]) {\n    B[i] = sum[k](A[i, i])\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "index `k` does not occur in the operand of `sum`"
    );
    assert_eq!(at(src, &d), (3, 16));
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N]) {\n    B[i] = max[i](A[i, i])\n}\n";
    let d = errors(src);
    assert_eq!(
        d[0].message,
        "`i` is on the left-hand side, so `max` cannot reduce over it"
    );
    assert_eq!(at(src, &d[0]), (3, 16));
}

#[test]
fn unknown_reduction_lists_the_valid_ones() {
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N]) {\n    B[i] = mean[j](A[i, j])\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "unknown reduction `mean`");
    assert_eq!(at(src, &d), (3, 12));
    assert_eq!(
        d.help.as_deref(),
        Some("the reductions are sum, max, min, prod, softmax, logsumexp")
    );
}

#[test]
fn explicit_reductions_lower_to_one_op_each() {
    let src =
        "dims N, M\nkernel f(A: f32[N, M], x: f32[M]) -> (y: f32[N], m: f32[N], l: f32[N]) {\n    \
               y[i] = sum[j](A[i, j] * x[j])\n    m[i] = max[j](A[i, j] * x[j])\n    \
               l[i] = logsumexp[j](A[i, j])\n}\n";
    let text = ir(src);
    assert!(text.contains("%y = generic (i: N, j: M) ins(%A[i, j], %x[j]) -> [i] reduce add over (j) { mul(%0, %1) } : f32"), "{text}");
    assert!(text.contains("%m = generic (i: N, j: M) ins(%A[i, j], %x[j]) -> [i] reduce max over (j) { mul(%0, %1) } : f32"), "{text}");
    assert!(
        text.contains(
            "%l.max = generic (i: N, j: M) ins(%A[i, j]) -> [i] reduce max over (j) { %0 } : f32"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "%l = generic (i: N) ins(%l.max[i], %l.sum[i]) -> [i] { add(%0, log(%1)) } : f32"
        ),
        "{text}"
    );
}

#[test]
fn delta_alone_does_not_fix_an_extent() {
    // (With one extent in the signature, that extent is taken: see
    // the_trace_of_delta_is_the_extent_of_its_index.)
    let src = "dims N, M\nkernel f(A: f32[N], C: f32[M]) -> (B: f32[N]) {\n    \
               B[i] = A[i] * delta[j, j]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "the extent of index `j` cannot be inferred");
    assert_eq!(at(src, &d), (3, 25));
}

#[test]
fn eps_fixes_its_indices_to_its_rank() {
    let src = "kernel f(a: f32[4], b: f32[3]) -> (c: f32[3]) {\n    c[i] = eps[i, j, k] * a[j] * b[k]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`j` is 3 in `eps` but 4 in `a`");
    assert_eq!(at(src, &d), (2, 29));
    assert_eq!(secondary_at(src, &d), [(2, 19)]);
}

// ----- functions and dtypes --------------------------------------------------------------------

#[test]
fn wrong_arity_unknown_functions_and_integer_transcendentals() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = exp(A[i], A[i])\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`exp` takes 1 argument but 2 were given");
    assert_eq!(at(src, &d), (3, 12));
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = gelu(A[i])\n}\n";
    assert_eq!(one_error(src).message, "unknown function `gelu`");
    let src = "dims N\nkernel f(A: i32[N]) -> (B: i32[N]) {\n    B[i] = sqrt(A[i])\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "`sqrt` needs a floating-point operand, but this is i32"
    );
    assert_eq!(d.help.as_deref(), Some("convert with f32(...)"));
    assert_eq!(at(src, &d), (3, 17));
}

#[test]
fn dtypes_never_mix_silently() {
    let src =
        "dims N\nkernel f(A: f32[N], B: f64[N]) -> (C: f64[N]) {\n    C[i] = A[i] * B[i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "mismatched dtypes in `*`: f32 and f64");
    assert_eq!(at(src, &d), (3, 19));
    assert_eq!(secondary_at(src, &d), [(3, 12)]);
    let fixed =
        "dims N\nkernel f(A: f32[N], B: f64[N]) -> (C: f64[N]) {\n    C[i] = f64(A[i]) * B[i]\n}\n";
    assert!(all(fixed).is_empty());
}

#[test]
fn output_dtype_must_match_the_right_side() {
    let src = "dims N\nkernel f(A: f64[N]) -> (B: f32[N]) {\n    B[i] = A[i]\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "`B` is declared f32 but the right-hand side is f64"
    );
    assert_eq!(at(src, &d), (3, 12));
}

#[test]
fn literals_and_dims_adopt_the_context_dtype() {
    let src = "dims N\nkernel f(x: f64[N], k: i32[N]) -> (y: f64[N], z: i32[N]) {\n    \
               y[i] = x[i] / sqrt(N) + 0.5\n    z[i] = k[i] * 2 + N\n}\n";
    let text = ir(src);
    assert!(text.contains("sqrt(dim(N):f64)"), "{text}");
    assert!(text.contains("0.5:f64"), "{text}");
    assert!(text.contains("2:i32"), "{text}");
    assert!(text.contains("dim(N):i32"), "{text}");
}

#[test]
fn fractional_literal_in_an_integer_context_is_an_error() {
    let src = "dims N\nkernel f(A: i32[N]) -> (B: i32[N]) {\n    B[i] = A[i] * 0.5\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "a fractional literal cannot be i32");
    assert_eq!(at(src, &d), (3, 19));
}

#[test]
fn a_bare_name_of_a_tensor_must_be_indexed() {
    let src = "dims N\nkernel f(A: f32[N], s: f32) -> (B: f32[N]) {\n    B[i] = A[i] * s + A\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "`A` has rank 1, so it must be indexed to be used as a value"
    );
    assert_eq!(at(src, &d), (3, 23));
    assert_eq!(d.help.as_deref(), Some("write `A[i]`"));
}

#[test]
fn where_with_an_index_mask_lowers_to_select() {
    let src = "dims T\nkernel f(S: f32[T, T]) -> (M: f32[T, T]) {\n    \
               M[i, j] = where(j <= i && i != 0, S[i, j], -inf)\n}\n";
    let text = ir(src);
    assert!(text.contains("select("), "{text}");
    assert!(text.contains("le(j, i)"), "{text}");
}

#[test]
fn relu_sums_inside_its_argument() {
    let src = "dims N, M\nkernel f(W: f32[N, M], x: f32[M], b: f32[N]) -> (y: f32[N]) {\n    \
               y[i] = relu(W[i, j] * x[j] + b[i])\n}\n";
    let text = ir(src);
    assert!(text.contains("%y.1 = generic (i: N, j: M) ins(%W[i, j], %x[j]) -> [i] reduce add over (j) { mul(%0, %1) } : f32"), "{text}");
    assert!(
        text.contains("%y = generic (i: N) ins(%y.1[i], %b[i]) -> [i] { relu(add(%0, %1)) } : f32"),
        "{text}"
    );
}

// ----- einsum and grad -------------------------------------------------------------------------

#[test]
fn einsum_must_be_the_whole_right_side_of_an_unbracketed_target() {
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N, N]) {\n    B[i, j] = 2 * einsum(\"ij->ji\", A)\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "`einsum(...)` must be the whole right-hand side");
    assert_eq!(at(src, &d), (3, 19));
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N, N]) {\n    B[i, j] = einsum(\"ij->ji\", A)\n}\n";
    assert_eq!(one_error(src).message, "an einsum result is assigned whole");
}

#[test]
fn einsum_errors_point_into_the_string() {
    let src = "dims N\nkernel f(A: f32[N, N]) -> (B: f32[N]) {\n    B = einsum(\"ijk->i\", A)\n}\n";
    let d = one_error(src);
    let (line, col) = at(src, &d);
    let (sline, scol) = pos(src, "\"ijk", 0, 0);
    assert_eq!(line, sline);
    assert!(col > scol, "the error points inside the literal: {d:#?}");
}

#[test]
fn einsum_lowers_to_one_generic_named_after_the_target() {
    let src = "dims I, J, K\nkernel f(A: f32[I, J], B: f32[J, K]) -> (C: f32[I, K]) {\n    \
               C = einsum(\"ij,jk->ik\", A, B)\n}\n";
    let text = ir(src);
    assert!(text.contains("%C = generic"), "{text}");
    assert!(text.contains("return C = %C"), "{text}");
}

#[test]
fn grad_items_define_kernels_and_their_errors_are_located() {
    let base = "dims N\nkernel f(A: f32[N], n: i32[N]) -> (B: f32[N]) {\n    B[i] = A[i]\n}\n";
    let src = format!("{base}kernel g = grad(f, wrt: [A])\n");
    assert!(all(&src).is_empty(), "{:#?}", all(&src));
    let (module, _) = compile_source(&src);
    let g = module.unwrap().func("g").unwrap().clone();
    let params: Vec<&str> = g.params.iter().map(|&p| g.value(p).name.as_str()).collect();
    assert_eq!(params, ["A", "n", "dB"]);
    assert_eq!(g.results.len(), 1);
    assert_eq!(g.results[0].name, "dA");
    let src = format!("{base}kernel g = grad(f, wrt: [A, n])\n");
    let d = one_error(&src);
    assert_eq!(
        d.message,
        "cannot differentiate `f`: `n` is i32; only f32/f64 inputs can be differentiated"
    );
    assert_eq!(at(&src, &d), (5, 29));
    let src = format!("{base}kernel g = grad(f, wrt: [A, A])\n");
    let d = one_error(&src);
    assert_eq!(
        d.message,
        "cannot differentiate `f`: `A` is listed twice in wrt"
    );
    assert_eq!(at(&src, &d), (5, 29));
    let src = format!("{base}kernel g = grad(h, wrt: [A])\nkernel h = grad(f, wrt: [A])\n");
    let d = one_error(&src);
    assert_eq!(d.message, "`h` is a `grad` item defined later in the file");
    assert_eq!(at(&src, &d), (5, 17));
    let src = format!("{base}kernel g = grad(h, wrt: [A])\n");
    let d = one_error(&src);
    assert_eq!(d.message, "no kernel named `h`");
    assert_eq!(at(&src, &d), (5, 17));
    let src = format!("{base}kernel g = grad(f, wrt: [A, Z])\n");
    let d = one_error(&src);
    assert_eq!(d.message, "`Z` is not a parameter of `f`");
    assert_eq!(at(&src, &d), (5, 29));
}

// ----- reporting -------------------------------------------------------------------------------

#[test]
fn three_independent_errors_are_all_reported() {
    let src = "dims N\n\
               kernel f(A: f32[N, N], x: f32[N]) -> (y: f32[N], z: f32[N]) {\n    \
               S[i] = A[i, j] * x[k]\n    \
               y[i] = A[i]\n    \
               z[i] = x[i] * q\n}\n";
    let e = errors(src);
    let messages: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "index `j` is free on the right but not on the left",
            "index `k` is free on the right but not on the left",
            "`A` has rank 2 but is indexed with 1 index",
            "unknown name `q`",
        ]
    );
    assert_eq!(at(src, &e[0]), (3, 17));
    assert_eq!(at(src, &e[2]), (4, 12));
    assert_eq!(at(src, &e[3]), (5, 19));
}

#[test]
fn a_failed_definition_is_not_reported_again() {
    let src = "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    S[i] = A[i] * A[k]\n    B[i] = S[i]\n}\n";
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        e[0].message,
        "index `k` is free on the right but not on the left"
    );
}

#[test]
fn very_long_chains_are_rejected_without_overflowing_the_stack() {
    let terms = vec!["A[i]"; 5000].join(" + ");
    let src = format!("dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {{\n    B[i] = {terms}\n}}\n");
    // Run on a small stack, as test threads and embedders may have.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            errors(&src)
                .into_iter()
                .map(|d| d.message)
                .collect::<Vec<_>>()
        })
        .unwrap();
    let messages = handle.join().unwrap();
    assert_eq!(messages, ["expression too large to analyse"]);
}

#[test]
fn tensors_too_large_to_address_are_rejected_where_declared_or_defined() {
    // Issue #13: `dims N = M = 2^63 - 1` with `A: f32[N, M]` used to pass `check` and `build`.
    let src = "dims N = 9223372036854775807, M = 9223372036854775807\n\
               kernel k(A: f32[N, M]) -> (B: f32) {\n    B = sum[i, j](A[i, j])\n}\n";
    let e = one_error(src);
    assert_eq!(e.message, "`A` is too large to address");
    assert_eq!(at(src, &e), pos(src, "A: f32", 0, 0));
    assert_eq!(
        e.primary.message,
        "f32[N (= 9223372036854775807), M (= 9223372036854775807)] needs more than 2^63 - 1 bytes"
    );

    // A local whose extents each fit but whose product does not: reported at its statement.
    let src = "dims N = 1099511627776\n\
               kernel k(A: f32[N]) -> (s: f32) {\n    T[i, j] = A[i] * A[j]\n    s = sum[i, j](T[i, j])\n}\n";
    let e = one_error(src);
    assert_eq!(e.message, "`T` is too large to address");
    assert_eq!(at(src, &e), pos(src, "T[i, j] =", 0, 0));

    // The bound is exact: 2^61 - 1 f32 elements fit in 2^63 - 1 bytes, 2^61 do not; the
    // element size counts (f64 halves it) and a zero extent does not hide the others.
    let decl = |ty: &str| format!("kernel k(A: {ty}) -> (B: {ty}) {{\n    B[i] = A[i]\n}}\n");
    assert!(errors(&decl("f32[2305843009213693951]")).is_empty());
    assert_eq!(errors(&decl("f32[2305843009213693952]")).len(), 2);
    assert!(errors(&decl("f64[1152921504606846975]")).is_empty());
    assert_eq!(errors(&decl("f64[1152921504606846976]")).len(), 2);
    let src =
        "kernel k(A: f32[0, 4611686018427387904]) -> (s: f32) {\n    s = sum[i, j](A[i, j])\n}\n";
    assert_eq!(one_error(src).message, "`A` is too large to address");

    // Symbolic dims count as 1: the rest must still fit.
    let src = "dims N\nkernel k(A: i64[N, 2305843009213693952]) -> (s: i64) {\n    s = sum[i, j](A[i, j])\n}\n";
    assert_eq!(one_error(src).message, "`A` is too large to address");
}

#[test]
fn a_dim_beyond_the_largest_extent_is_rejected_at_its_value() {
    let src =
        "dims N = 9223372036854775808\nkernel k(A: f32[N]) -> (B: f32[N]) {\n    B[i] = A[i]\n}\n";
    let e = one_error(src);
    assert_eq!(
        e.message,
        "`9223372036854775808` is too large for a dim's extent"
    );
    assert_eq!(at(src, &e), pos(src, "9223", 0, 0));
    let src = "dims N = 9223372036854775807\nkernel k(x: i64) -> (s: i64) {\n    s = x + N\n}\n";
    assert!(
        errors(src).is_empty(),
        "the largest extent itself is a valid dim"
    );
}

// ----- schedule annotations (docs/schedules.md) --------------------------------------------------

const MATMUL_HEAD: &str =
    "dims M, N, K\nkernel f(A: f32[M, K], B: f32[K, N]) -> (C: f32[M, N]) {\n";

#[test]
fn a_schedule_annotation_is_kept_on_the_statements_op() {
    let src = format!(
        "{MATMUL_HEAD}    C[i, j] = A[i, k] * B[k, j]\n        schedule gemm(kc = 128, m = [i], pack = [b])\n}}\n"
    );
    assert!(
        ir(&src).contains("{ mul(%0, %1) } : f32\n    schedule gemm(m=[i], kc=128, pack=[b])\n"),
        "{}",
        ir(&src)
    );
    // `schedule` stays an ordinary name where no annotation can start.
    let src = "kernel f(schedule: f32[3]) -> (y: f32[3]) {\n    y[i] = schedule[i]\n}\n";
    assert!(ir(src).contains("ins(%schedule[i])"));
}

#[test]
fn schedule_keys_and_indices_are_checked_where_they_are_written() {
    let src = format!(
        "{MATMUL_HEAD}    C[i, j] = A[i, k] * B[k, j] schedule gemm(m = [q], colour = 3, mr = 0)\n}}\n"
    );
    let e = errors(&src);
    let found: Vec<(&str, (usize, usize))> = e
        .iter()
        .map(|d| (d.message.as_str(), at(&src, d)))
        .collect();
    assert_eq!(
        found,
        [
            (
                "bad schedule: the op has no index `q`",
                pos(&src, "q]", 0, 0)
            ),
            (
                "bad schedule: unknown key `colour` for a `gemm` schedule: the keys are outer, m, \
                 n, k, mr, nr, mc, kc, nc, pack, ukernel, parallel, parallel_blocks, epilogue",
                pos(&src, "colour", 0, 0)
            ),
            (
                "bad schedule: `mr` takes an integer from 1 to 1048576",
                pos(&src, "0)", 0, 0)
            ),
        ]
    );
    assert_eq!(e[0].notes, ["the statement's indices are i, j, k"]);
    let src = format!("{MATMUL_HEAD}    C[i, j] = A[i, k] * B[k, j] schedule tiled()\n}}\n");
    let d = one_error(&src);
    assert_eq!(
        d.message,
        "bad schedule: unknown schedule `tiled`: the schedules are naive, gemm, loops, softmax, attention"
    );
    assert_eq!(at(&src, &d), pos(&src, "tiled", 0, 0));
}

#[test]
fn a_schedule_that_does_not_fit_its_statement_is_reported_at_the_annotation() {
    let src = "dims M, K\nkernel f(A: f32[M, K]) -> (E: f32[M]) {\n    \
               E[i] = sum[k](A[i, k]) schedule gemm(kc = 64)\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "the schedule does not fit the statement: a `gemm` schedule needs the body `mul(%a, \
         %b)` of two inputs"
    );
    assert_eq!(at(src, &d), pos(src, "schedule", 0, 0));
    assert_eq!(d.primary.message, "a `gemm` schedule");
    let src = format!(
        "{MATMUL_HEAD}    C[i, j] = A[i, k] * B[k, j] schedule loops(order = [j, i, k], vector = [j: 4])\n}}\n"
    );
    let d = one_error(&src);
    assert_eq!(
        d.message,
        "the schedule does not fit the statement: the vectorised index `j` is not the innermost \
         in `order`"
    );
}

#[test]
fn ranks_above_64_and_entry_points_with_too_many_checks_are_rejected() {
    // Rank 65 (numpy's limit is 64), on a parameter and on a local.
    let ones = |n: usize| vec!["1"; n].join(", ");
    let ix = |n: usize| {
        (0..n)
            .map(|k| format!("i{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let src = format!(
        "kernel k(A: f32[{}]) -> (s: f32) {{\n    s = sum[{}](A[{}])\n}}\n",
        ones(65),
        ix(65),
        ix(65)
    );
    let e = one_error(&src);
    assert_eq!(e.message, "`A` has too many axes");
    assert_eq!(e.primary.message, "rank 65");
    assert_eq!(at(&src, &e), pos(&src, "A: f32", 0, 0));
    let product: Vec<String> = (0..65).map(|k| format!("a[i{k}]")).collect();
    let src = format!(
        "kernel k(a: f32[1]) -> (s: f32) {{\n    T[{}] = {}\n    s = sum[{}](T[{}])\n}}\n",
        ix(65),
        product.join(" * "),
        ix(65),
        ix(65)
    );
    let e = one_error(&src);
    assert_eq!(e.message, "`T` has too many axes");
    assert_eq!(at(&src, &e), pos(&src, "T[", 0, 0));
    // Rank 64 is accepted, for an output too (64 * 64 + 2 = 4098 checks).
    let src = format!(
        "kernel k(A: f32[{}]) -> (B: f32[{}]) {{\n    B[{}] = A[{}]\n}}\n",
        ones(64),
        ones(64),
        ix(64),
        ix(64)
    );
    assert!(errors(&src).is_empty(), "{:?}", errors(&src));

    // The entry point checks each output against every argument and each pair of its axes:
    // 46 scalar inputs and 46 scalar outputs make 46 * 92 = 4232 checks (> 4160); 45 make 4050.
    let kernel = |n: usize| {
        let ins: Vec<String> = (0..n).map(|k| format!("x{k}: f32")).collect();
        let outs: Vec<String> = (0..n).map(|k| format!("y{k}: f32")).collect();
        let body: Vec<String> = (0..n).map(|k| format!("    y{k} = x{k}\n")).collect();
        format!(
            "kernel wide({}) -> ({}) {{\n{}}}\n",
            ins.join(", "),
            outs.join(", "),
            body.concat()
        )
    };
    assert!(errors(&kernel(45)).is_empty());
    let src = kernel(46);
    let e = one_error(&src);
    assert_eq!(e.message, "kernel `wide` has too many or too large outputs");
    assert_eq!(
        e.primary.message,
        "its entry point would make 4232 argument checks"
    );
    assert_eq!(at(&src, &e), pos(&src, "wide", 0, 0));
}

// ----- the common slips (issue 14) -------------------------------------------------------------

const SLIP_HEAD: &str = "dims M, K, N\n\
    kernel f(A: f32[M, K], x: f32[K], B: f32[K, N], XQ: f32[M]) -> (y: f32[M]) {\n";

#[test]
fn brackets_per_index_get_the_comma_form() {
    let src = format!("{SLIP_HEAD}    y[i] = A[i][k] * x[k]\n}}\n");
    let d = one_error(&src);
    assert_eq!(d.message, "indices are written in one pair of brackets");
    assert_eq!(at(&src, &d), pos(&src, "[k]", 0, 0));
    assert_eq!(
        d.help.as_deref(),
        Some("separate the indices with commas: `A[i, k]`")
    );
    // The statement is still checked as `A[i, k]`: a wrong index is reported too.
    let src = format!("{SLIP_HEAD}    y[i] = A[i][j][k] * x[j]\n}}\n");
    let e = errors(&src);
    let messages: Vec<&str> = e.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "indices are written in one pair of brackets",
            "`A` has rank 2 but is indexed with 3 indices"
        ]
    );
    assert_eq!(
        e[0].help.as_deref(),
        Some("separate the indices with commas: `A[i, j, k]`")
    );
    // On the left too.
    let src = format!("{SLIP_HEAD}    t[i][k] = A[i, k]\n    y[i] = XQ[i]\n}}\n");
    let e = errors(&src);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(
        e[0].help.as_deref(),
        Some("separate the indices with commas: `t[i, k]`")
    );
}

#[test]
fn a_matrix_product_with_at_gets_its_index_form() {
    let src = format!("{SLIP_HEAD}    y = A @ x\n}}\n");
    let d = one_error(&src);
    assert_eq!(d.message, "`@` is not an operator of index notation");
    assert_eq!(at(&src, &d), pos(&src, "A @", 0, 0));
    assert_eq!(
        d.help.as_deref(),
        Some(
            "a product is written with a repeated index, which is summed: \
             `y[i] = A[i, j] * x[j]`"
        )
    );
    let hint = |lhs: &str, rhs: &str, decls: &str| {
        let src = format!("dims M, K, N, H\nkernel g({decls}) -> () {{\n    {lhs} = {rhs}\n}}\n");
        let e = errors(&src);
        let d = e
            .iter()
            .find(|d| d.message.starts_with("`@`"))
            .unwrap_or_else(|| panic!("{e:#?}"));
        d.help.clone().unwrap()
    };
    let decls = "A: f32[M, K], B: f32[K, N], u: f32[K], v: f32[K], S: f32[H, M, K], \
                 T: f32[H, K, N]";
    assert!(hint("C", "A @ B", decls).ends_with("`C[i, k] = A[i, j] * B[j, k]`"));
    assert!(hint("s", "u @ v", decls).ends_with("`s = u[j] * v[j]`"));
    assert!(hint("w", "u @ B", decls).ends_with("`w[k] = u[j] * B[j, k]`"));
    assert!(hint("P", "S @ T", decls).ends_with("`P[b, i, k] = S[b, i, j] * T[b, j, k]`"));
    assert!(hint("Q", "S @ B", decls).ends_with("`Q[b, i, k] = S[b, i, j] * B[j, k]`"));
    // Operands that are not bare tensor names: the general form.
    assert!(hint("r", "(A[i, j] + 1) @ u", decls).ends_with("`y[i] = A[i, j] * x[j]`"));
}

#[test]
fn unknown_names_suggest_the_closest_known_one() {
    let help = |body: &str| {
        let src = format!("{SLIP_HEAD}{body}\n    y[i] = XQ[i]\n}}\n");
        let d = one_error(&src);
        (d.message.clone(), d.help.clone().unwrap_or_default())
    };
    assert_eq!(
        help("    t[i] = sigmiod(XQ[i])"),
        (
            "unknown function `sigmiod`".into(),
            "did you mean `sigmoid`?".into()
        )
    );
    assert_eq!(
        help("    t[i] = sofmax(XQ[i])"),
        (
            "unknown function `sofmax`".into(),
            "did you mean the reduction `softmax[j](...)`?".into()
        )
    );
    assert_eq!(
        help("    t[i] = smu[k](A[i, k])"),
        (
            "unknown reduction `smu`".into(),
            "did you mean `sum`?".into()
        )
    );
    assert_eq!(
        help("    t[i] = Xq[i]"),
        ("unknown tensor `Xq`".into(), "did you mean `XQ`?".into())
    );
    assert_eq!(
        help("    t[i] = banana(XQ[i])").1,
        "the functions are exp, log, sqrt, rsqrt, tanh, sigmoid, relu, abs, neg, max, min, pow, \
         where, f32, f64, i32, i64; the reductions (sum, max, min, prod, softmax, logsumexp) are \
         written with indices, e.g. sum[j](...)"
    );
    // (A kernel whose signature does not parse is not checked further.)
    let src = "dims M\nkernal g(A: f32[M]) -> (B: f32[M]) { B[i] = A[i] }\n\
               kernel e(A: f32[M]) -> (B: f23[M]) {\n    B[i] = A[i]\n}\n\
               kernel f(A: f32[Mm]) -> (B: f32[M]) {\n    B[i] = A[i]\n}\n\
               kernel h = grad(ff, wrt: [A])\n\
               kernel j = grad(f, wrt: [a])\n";
    let e = errors(src);
    let found: Vec<(&str, Option<&str>)> = e
        .iter()
        .map(|d| (d.message.as_str(), d.help.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "expected `dims` or `kernel`, found the name `kernal`",
                Some("did you mean `kernel`?")
            ),
            ("unknown element type `f23`", Some("did you mean `f32`?")),
            (
                "undeclared dim `Mm`",
                Some("did you mean `M`? Otherwise declare it at the top of the file: `dims Mm`")
            ),
            ("no kernel named `ff`", Some("did you mean `f`?")),
        ]
    );
    let src = "dims M\nkernel f(A: f32[M]) -> (B: f32[M]) {\n    B[i] = A[i]\n}\n\
               kernel j = grad(f, wrt: [a])\n";
    assert_eq!(
        one_error(src).help.as_deref(),
        Some("did you mean `A`? its parameters are A")
    );
}

#[test]
fn a_missing_parenthesis_points_at_the_one_left_open() {
    let src = format!("{SLIP_HEAD}    t[i] = exp(A[i, k] * x[k]\n    y[i] = (t[i] + XQ[i]\n}}\n");
    let e = errors(&src);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(
        e[0].message,
        "expected `,` or `)` in the arguments, found the name `y`"
    );
    assert_eq!(at(&src, &e[0]), pos(&src, "y[i] =", 0, 0));
    assert_eq!(secondary_at(&src, &e[0]), [pos(&src, "(A[i, k]", 0, 0)]);
    assert_eq!(e[0].secondary[0].message, "this `(` is not closed");
    assert_eq!(e[0].help.as_deref(), Some("add `)` to close the `(`"));
    assert_eq!(e[1].message, "expected `)` to close `(`, found `}`");
    assert_eq!(secondary_at(&src, &e[1]), [pos(&src, "(t[i]", 0, 0)]);
    // A reduction's parenthesis, and a `[` left open.
    let src = format!("{SLIP_HEAD}    y[i] = sum[k](A[i, k]\n}}\n");
    let d = one_error(&src);
    assert_eq!(secondary_at(&src, &d), [pos(&src, "(A[i, k]", 0, 0)]);
    let src = format!("{SLIP_HEAD}    y[i] = A[i, k * x[k]\n}}\n");
    let d = one_error(&src);
    assert_eq!(d.message, "expected `,` or `]` in the indices, found `*`");
    assert_eq!(d.secondary[0].message, "this `[` is not closed");
}

#[test]
fn after_a_syntax_error_the_rest_of_the_file_is_still_checked() {
    // One syntax error per kernel, and semantic errors elsewhere: all are reported, and the
    // statement that did not parse is not reported again (its target `t` is defined, the
    // output `y` it feeds is assigned).
    let src = "dims N\n\
               kernel f(x: f32[N]) -> (y: f32[N]) {\n    \
               t[i] = x[i] * * 2\n    \
               u[i] = x[j]\n    \
               y[i] = t[i] + u[i]\n\
               }\n\
               kernel g(x: f32[N]) -> (z: f32[N]) {\n    \
               z[i] = x[i] +\n\
               }\n\
               kernel h(x: f32[N] -> (w: f32[N]) {\n    w[i] = x[i]\n}\n\
               kernel dh = grad(h, wrt: [x])\n\
               kernel k(x: f32[N]) -> (v: f32[N]) {\n    v[i] = x[i, i]\n}\n";
    let e = errors(src);
    let found: Vec<(&str, (usize, usize))> =
        e.iter().map(|d| (d.message.as_str(), at(src, d))).collect();
    assert_eq!(
        found,
        [
            ("expected an expression, found `*`", pos(src, "* 2", 0, 0)),
            (
                "expected an expression, found `}`",
                pos(src, "}\nkernel h", 0, 0)
            ),
            (
                "expected `,` or `)` in the kernel's inputs, found `->`",
                pos(src, "-> (w", 0, 0)
            ),
            (
                "index `i` is not on the right-hand side",
                pos(src, "i] = x[j]", 0, 0)
            ),
            (
                "index `j` is free on the right but not on the left",
                pos(src, "j]", 0, 0)
            ),
            (
                "`x` has rank 1 but is indexed with 2 indices",
                pos(src, "x[i, i]", 0, 0)
            ),
        ]
    );
    assert!(compile_source(src).0.is_none());
}

// ----- delta where the chapter writes it (issue 14) --------------------------------------------

/// Runs kernel `k` of `src` in the interpreter on `inputs` (f32 vectors or matrices).
fn run(src: &str, k: &str, inputs: &[einc_runtime::Array]) -> Vec<einc_runtime::Array> {
    let (module, diags) = compile_source(src);
    let module = module.unwrap_or_else(|| panic!("{diags:#?}"));
    einc_compiler::interp::run(&module, k, inputs).unwrap()
}

fn scalar(a: &einc_runtime::Array) -> f64 {
    a.get(&[]).to_f64()
}

fn f32_array(shape: &[usize], values: &[f32]) -> einc_runtime::Array {
    einc_runtime::Array::from_buffer(einc_runtime::array::Buffer::F32(values.to_vec()), shape)
        .unwrap()
}

#[test]
fn the_trace_of_delta_is_the_extent_of_its_index() {
    // delta_ii = n: the index ranges over the kernel's only extent, with a note saying so.
    let src = "dims N\nkernel t(A: f32[N, N]) -> (t: f32) {\n    t = delta[i, i]\n}\n";
    let d = all(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].severity, Severity::Note);
    assert_eq!(
        d[0].message,
        "`i` takes the extent N, the only extent in the kernel's signature"
    );
    assert_eq!(at(src, &d[0]), pos(src, "delta", 0, 0));
    assert_eq!(
        d[0].help.as_deref(),
        Some("to say so in the statement, write `i: N` where the index is")
    );
    let a = einc_runtime::Array::zeros(einc_runtime::DType::F32, &[4, 4]).unwrap();
    assert_eq!(scalar(&run(src, "t", &[a])[0]), 4.0);
    // With two extents in the signature, nothing is guessed.
    let src = "dims N, M\nkernel t(A: f32[N, M]) -> (t: f32) {\n    t = delta[i, i]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "the extent of index `i` cannot be inferred");
    assert_eq!(
        d.help.as_deref(),
        Some(
            "use `i` to index a tensor in this statement, or write its extent where it is: \
             `i: N` (`delta[i: N, j]`, `sum[i: N](...)`); `delta` and conditions do not fix an \
             extent"
        )
    );
}

#[test]
fn an_index_extent_can_be_written_where_the_index_is() {
    let src = "dims N, M\n\
               kernel k(A: f32[N, M], x: f32[M]) -> (t: f32, s: f32, n: f32, y: f32[M]) {\n    \
               t = delta[i: N, i]\n    \
               s = sum[i: M](delta[i, i] * x[i]) + A[0, 0]\n    \
               n = sum[j: 5](x[0] + 1)\n    \
               I[i: M, j: M] = delta[i, j]\n    \
               y[i] = I[i, j] * x[j]\n\
               }\n";
    assert!(all(src).is_empty(), "{:#?}", all(src));
    let a = f32_array(&[2, 3], &[0.5, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let x = f32_array(&[3], &[1.0, 2.0, 3.0]);
    let out = run(src, "k", &[a, x.clone()]);
    assert_eq!(scalar(&out[0]), 2.0);
    assert_eq!(scalar(&out[1]), 6.5);
    assert_eq!(scalar(&out[2]), 10.0);
    assert_eq!(out[3], x);
    // An extent that disagrees with the tensors is reported at the annotation.
    let src = "dims N, M\nkernel k(x: f32[N]) -> (y: f32[N]) {\n    y[i] = x[i: M]\n}\n";
    let d = one_error(src);
    assert_eq!(
        d.message,
        "`i` has extent N in `x` but M in the annotation `i: M`"
    );
    assert_eq!(at(src, &d), pos(src, "i: M", 0, 0));
    // (The annotation is written on the axis of `x` that it contradicts.)
    assert_eq!(secondary_at(src, &d), [pos(src, "i: M", 0, 0)]);
    let src = "dims N\nkernel k(x: f32[N]) -> (y: f32[N]) {\n    y[i] = x[i: Nn]\n}\n";
    let d = one_error(src);
    assert_eq!(d.message, "undeclared dim `Nn`");
    assert_eq!(at(src, &d), pos(src, "Nn", 0, 0));
    // The extent goes with the index, not with the tensor: printed where it was written.
    let (program, diags) = einc_compiler::syntax::parse(
        "kernel k(x: f32[3]) -> (t: f32) {\n    t = sum[i: 4](delta[i, j: 4] * x[j])\n}\n",
    );
    assert!(diags.is_empty(), "{diags:#?}");
    assert!(
        einc_compiler::syntax::print_program(&program)
            .contains("t = sum[i: 4](delta[i, j: 4] * x[j])"),
        "{}",
        einc_compiler::syntax::print_program(&program)
    );
}

#[test]
fn the_log_of_a_softmax_statement_warns_and_log_softmax_in_one_expression_does_not() {
    let src = "dims N\n\
               kernel f(z: f32[N]) -> (lp: f32[N]) {\n    \
               P[j] = softmax[j](z[j])\n    \
               lp[j] = log(P[j])\n}\n";
    let d = all(src);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].severity, Severity::Warning);
    assert_eq!(
        d[0].message,
        "the log of `P`, a softmax, is -inf where it underflows"
    );
    assert_eq!(at(src, &d[0]), pos(src, "P[j])", 0, 0));
    assert!(
        d[0].help
            .as_deref()
            .unwrap()
            .contains("z - logsumexp[j](z)"),
        "{d:#?}"
    );
    let fused = "dims N\n\
                 kernel f(z: f32[N]) -> (lp: f32[N]) {\n    \
                 lp[j] = log(softmax[j](z[j]))\n}\n";
    assert!(all(fused).is_empty(), "{:#?}", all(fused));
}

#[test]
fn jacobian_and_hessian_items_say_what_they_need() {
    let head = "dims N\n\
                kernel f(A: f64[N, N], x: f64[N]) -> (y: f64[N], s: f64) {\n    \
                y[i] = A[i, j] * x[j]\n    s = x[i] * y[i]\n}\n\
                kernel v(x: f64[N]) -> (y: f64[N]) {\n    y[i] = x[i] * x[i]\n}\n";
    for (item, message) in [
        (
            "kernel h = hessian(v, wrt: [x])",
            "cannot differentiate `v`: a hessian is taken of a scalar; `v`'s output `y` has rank 1",
        ),
        (
            "kernel h = jacobian(f, wrt: [x])",
            "cannot differentiate `f`: a jacobian is taken of a kernel with one output; `f` has 2",
        ),
        (
            "kernel h = hessian(f, wrt: [x])",
            "cannot differentiate `f`: a hessian is taken of a kernel with one output; `f` has 2",
        ),
    ] {
        let src = format!("{head}{item}\n");
        let e = one_error(&src);
        assert_eq!(e.message, message);
        assert_eq!(at(&src, &e), pos(&src, item, 0, 0));
    }
    let src = "dims N\n\
               kernel q(A: f64[N, N], x: f64[N]) -> (s: f64) {\n    s = x[i] * A[i, j] * x[j]\n}\n\
               kernel h = hessian(q, wrt: [A, x])\n";
    assert_eq!(
        one_error(src).message,
        "cannot differentiate `q`: a hessian is taken with respect to one input, not 2"
    );
}
