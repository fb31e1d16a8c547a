use super::*;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::ir::tensor::schedule::check;
use crate::ir::tensor::verify::verify_module;
use crate::target::{Caches, Isa};

const CHAIN: &str = "dims T, K
func @f(%Q: TY[T, K], %Kx: TY[T, K], %V: TY[T, K]) -> (O: TY[T, K]) {
  %S = generic (i: T, j: T, a: K) ins(%Q[i, a], %Kx[j, a]) -> [i, j] reduce add over (a) { mul(%0, %1) } : TY
  %P.max = generic (i: T, j: T) ins(%S[i, j]) -> [i] reduce max over (j) { %0 } : TY
  %P.exp = generic (i: T, j: T) ins(%S[i, j], %P.max[i]) -> [i, j] { exp(sub(%0, %1)) } : TY
  %P.sum = generic (i: T, j: T) ins(%P.exp[i, j]) -> [i] reduce add over (j) { %0 } : TY
  %P = generic (i: T, j: T) ins(%P.exp[i, j], %P.sum[i]) -> [i, j] { div(%0, %1) } : TY
  %O = generic (i: T, a: K, j: T) ins(%P[i, j], %V[j, a]) -> [i, a] reduce add over (j) { mul(%0, %1) } : TY
SCHEDULE  return O = %O
}
";

fn chain(dtype: &str, schedule: &str) -> Module {
    let text = CHAIN.replace("TY", dtype).replace("SCHEDULE", schedule);
    parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn output_op(m: &Module) -> &Generic {
    let OpKind::Generic(g) = &m.funcs[0].ops[5].kind;
    g
}

#[test]
fn the_cache_model_blocks_fit_l1_l2_and_the_stack() {
    for (dtype, l1d, l2) in [("f32", 32 << 10, 512 << 10), ("f64", 48 << 10, 1 << 20)] {
        let m = chain(dtype, "");
        let g = output_op(&m);
        let mut machine = Machine::defaults(Isa::X86_64);
        machine.caches = Caches {
            l1d,
            l2,
            l3: 4 << 20,
            line: 64,
        };
        for head in [None, Some(16), Some(64), Some(100), Some(1000)] {
            let s = complete(&machine, g, &AttentionSchedule::default(), head);
            let whole = Schedule::Attention(s.clone());
            assert!(whole.missing().is_empty() && check(g, &whole).is_empty());
            let bytes = g.dtype.size_bytes() as u64;
            let (qb, kb, hb) = (s.qb.unwrap(), s.kb.unwrap(), s.hb.unwrap());
            assert!(qb * kb * bytes <= l1d, "{dtype} {head:?}: {s:?}");
            assert!(
                (qb + 2 * hb) * kb * bytes <= l2 / 2 || kb == s.nr.unwrap(),
                "{s:?}"
            );
            assert!(hb >= head.unwrap_or(ASSUMED_HEAD).min(MAX_HEAD_BLOCK) || hb == MAX_HEAD_BLOCK);
        }
    }
}

#[test]
fn blocks_given_by_hand_are_rounded_to_the_tile_and_shrunk_to_the_stack() {
    let m = chain("f64", "");
    let g = output_op(&m);
    let machine = Machine::defaults(Isa::X86_64);
    let s = complete(
        &machine,
        g,
        &AttentionSchedule {
            qb: Some(6),
            kb: Some(4096),
            hb: Some(4096),
            ..AttentionSchedule::default()
        },
        None,
    );
    assert_eq!(s.qb, Some(8));
    assert!(
        check(g, &Schedule::Attention(s.clone())).is_empty(),
        "{s:?}"
    );
    assert!(s.scratch_bytes(8).unwrap() <= MAX_SCOPED_BLOCK_BYTES);
}

#[test]
fn attention_schedules_print_parse_and_verify() {
    let m = chain(
        "f32",
        "    schedule attention(qb=8, kb=16, hb=8, mr=4, nr=8)\n",
    );
    verify_module(&m).unwrap();
    let text = print_module(&m);
    assert!(
        text.contains("schedule attention(qb=8, kb=16, hb=8, mr=4, nr=8)"),
        "{text}"
    );
    assert_eq!(parse_module(&text).unwrap(), m);
    let bad = chain(
        "f32",
        "    schedule attention(qb=6, kb=12, hb=8, mr=4, nr=8)\n",
    );
    let errors = verify_module(&bad).unwrap_err();
    let shown = format!("{errors:?}");
    assert!(
        shown.contains("qb = 6 is not a multiple of mr = 4"),
        "{shown}"
    );
    assert!(
        shown.contains("kb = 12 is not a multiple of nr = 8"),
        "{shown}"
    );
}

#[test]
fn an_attention_schedule_off_a_chain_is_a_lowering_error() {
    // The scores are also returned: no chain ends at the output.
    let text = CHAIN
        .replace("TY", "f32")
        .replace(
            "SCHEDULE",
            "    schedule attention(qb=8, kb=16, hb=8, mr=4, nr=8)\n",
        )
        .replace("-> (O: f32[T, K])", "-> (O: f32[T, K], S: f32[T, T])")
        .replace("return O = %O", "return O = %O, S = %S");
    let m = parse_module(&text).unwrap();
    let e = crate::lower::lower_module(&m).unwrap_err();
    assert!(e.message.contains("does not end an attention chain"), "{e}");
}

#[test]
fn the_pass_schedules_the_chain_and_clears_the_rest() {
    let mut m = chain("f32", "    schedule gemm(outer=[], m=[i], n=[a], k=[j])\n");
    let pass = FlashAttention {
        machine: Machine::defaults(Isa::X86_64),
        dims: BTreeMap::from([("K".to_string(), 40)]),
        overrides: AttentionSchedule::default(),
    };
    assert!(pass.run_tensor(&mut m));
    let s = match &output_op(&m).schedule {
        Some(Schedule::Attention(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    // The head dimension, known from the hint, rounded to the tile.
    assert_eq!(s.hb, Some(40));
    assert!(!pass.run_tensor(&mut m), "a second run changes nothing");
    // A naive output is left alone.
    let mut naive = chain("f32", "    schedule naive()\n");
    assert!(!pass.run_tensor(&mut naive));
}
