use super::*;
use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_function;
use crate::ir::tensor::verify::verify_module;
use crate::ir::tensor::{AxisMap, IndexDef, IndexId, Module};

const TEXT: &str = "dims N
func @f(%x: f32[N]) -> (y: f32[N], z: f32[N]) {
  %a = generic (i: N) ins(%x[i]) -> [i] { exp(%0) } : f32
  %y = generic (i: N) ins(%a[i]) -> [i] { neg(%0) } : f32
  return y = %y, z = %a
}";

fn module() -> Module {
    parse_module(TEXT).unwrap()
}

/// `neg(%0)` over `v`, as a map over `N`.
fn negate(v: ValueId) -> Generic {
    Generic {
        indices: vec![IndexDef {
            name: "i".into(),
            extent: crate::ir::tensor::Extent::Dim("N".into()),
        }],
        inputs: vec![Input {
            value: v,
            map: vec![AxisMap::Index(IndexId(0))],
        }],
        output: vec![IndexId(0)],
        reduce: None,
        body: Expr::Unary(crate::ir::tensor::UnaryFn::Neg, Box::new(Expr::Input(0))),
        dtype: einc_runtime::DType::F32,
        schedule: None,
    }
}

#[test]
fn inserted_ops_get_fresh_names_and_derived_types_and_uses_move() {
    let mut m = module();
    let f = &mut m.funcs[0];
    let a = f.ops[0].result;
    let mut b = Builder::new(f);
    // `%a` is taken, so the new value is `%a.1`; it reads `%a` and replaces it everywhere
    // after it.
    let n = b.insert_op(1, "a", negate(a));
    b.replace_all_uses(a, n);
    // The new op itself must still read `%a`.
    let OpKind::Generic(g) = &mut b.func_mut().ops[1].kind;
    g.inputs[0].value = a;
    b.rename(n, "y");
    let f = b.func();
    assert_eq!(f.value(n).ty, f.value(a).ty);
    assert!(
        verify_module(&m).is_ok(),
        "{}",
        print_function(&m, &m.funcs[0])
    );
    assert_eq!(
        print_function(&m, &m.funcs[0]),
        "func @f(%x: f32[N]) -> (y: f32[N], z: f32[N]) {
  %a = generic (i: N) ins(%x[i]) -> [i] { exp(%0) } : f32
  %y.1 = generic (i: N) ins(%a[i]) -> [i] { neg(%0) } : f32
  %y = generic (i: N) ins(%y.1[i]) -> [i] { neg(%0) } : f32
  return y = %y, z = %y.1
}
"
    );
}

#[test]
fn compact_renumbers_after_ops_are_removed() {
    let mut m = module();
    let f = &mut m.funcs[0];
    assert!(!compact(f), "nothing to drop");
    // Drop `%y` after redirecting its uses to `%a`.
    let (a, y) = (f.ops[0].result, f.ops[1].result);
    Builder::new(f).replace_all_uses(y, a);
    f.ops.remove(1);
    assert!(compact(f));
    assert_eq!(f.values.len(), 2);
    assert!(verify_module(&m).is_ok());
    assert_eq!(m.funcs[0].results[0].value, ValueId(1));
}

#[test]
fn unread_inputs_are_dropped_and_the_rest_numbered_by_first_read() {
    let inputs: Vec<Input> = (0..3)
        .map(|k| Input {
            value: ValueId(k),
            map: vec![],
        })
        .collect();
    let body = Expr::Binary(
        crate::ir::tensor::BinaryFn::Sub,
        Box::new(Expr::Input(2)),
        Box::new(Expr::Input(0)),
    );
    let (kept, body) = keep_used_inputs(inputs, &body);
    assert_eq!(
        kept.iter().map(|i| i.value).collect::<Vec<_>>(),
        [ValueId(2), ValueId(0)]
    );
    assert_eq!(
        body,
        Expr::Binary(
            crate::ir::tensor::BinaryFn::Sub,
            Box::new(Expr::Input(0)),
            Box::new(Expr::Input(1)),
        )
    );
}
