//! GEMM epilogues: the elementwise maps after a GEMM-shaped contraction that its GETT applies
//! as it stores C, so that the un-epilogued C is never written to memory.
//!
//! A `gemm` schedule's `epilogue=[...]` lists the steps, in the order they apply:
//! `scale` (`mul(c, s)`) or `divide` (`div(c, s)`) by a factor `s` that varies with no index
//! (constants and dims), `bias` (`add(c, b)` with `b` an input of the map), `relu`
//! (`relu(c)`, `max(c, 0)` or `max(0, c)`), and `cast` (`cast(T, c)`), each at most once. The
//! maps are found structurally ([`find`]): starting from the contraction's value, the one op
//! that reads it, when that op is a map reading it once at its own indices and nothing else
//! reads it or returns it; then the same from that map's value; as long as each map's body is
//! its chain input under a sequence of steps and the steps so far come in the order above. The
//! last map's value is what the GETT stores; the contraction's value and the maps before the
//! last are never materialised.
//!
//! What the micro-kernel computes from the steps is what the maps compute (one rounding per
//! step, in the same order: `x * s` equals `s * x` and `x + b` equals `b + x` bit for bit); the
//! one difference is `relu` of `-0.0`, which the micro-kernel's `relu` (numpy's `maximum`)
//! makes `0.0` (`docs/schedules.md`).

use crate::ir::tensor::{AxisMap, BinaryFn, Expr, Function, Generic, IndexId, OpKind, UnaryFn};
use einc_runtime::{DType, Scalar};

/// One step of an epilogue, in the order steps apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpilogueStep {
    /// Multiply by a factor.
    Scale,
    /// Divide by a factor.
    Divide,
    /// Add an input read at the GEMM's indices (a vector along M or N, or a constant).
    Bias,
    /// Negative results become 0.
    Relu,
    /// Convert to another dtype.
    Cast,
}

impl EpilogueStep {
    /// Every step, for parsing and messages.
    pub const ALL: [EpilogueStep; 5] = [
        EpilogueStep::Scale,
        EpilogueStep::Divide,
        EpilogueStep::Bias,
        EpilogueStep::Relu,
        EpilogueStep::Cast,
    ];

    /// The name in the text form.
    pub fn name(self) -> &'static str {
        match self {
            EpilogueStep::Scale => "scale",
            EpilogueStep::Divide => "divide",
            EpilogueStep::Bias => "bias",
            EpilogueStep::Relu => "relu",
            EpilogueStep::Cast => "cast",
        }
    }

    /// Where the step comes in an epilogue (`scale` and `divide` share the first place: the
    /// micro-kernel has one factor).
    fn rank(self) -> u8 {
        match self {
            EpilogueStep::Scale | EpilogueStep::Divide => 0,
            EpilogueStep::Bias => 1,
            EpilogueStep::Relu => 2,
            EpilogueStep::Cast => 3,
        }
    }
}

/// Whether `steps` come in the order epilogue steps apply, each at most once.
pub fn in_order(steps: &[EpilogueStep]) -> bool {
    steps.windows(2).all(|w| w[0].rank() < w[1].rank())
}

/// The bias of an epilogue: a tensor read at the contraction's indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Bias {
    /// The tensor added.
    pub value: crate::ir::tensor::ValueId,
    /// Per axis of the tensor: the contraction's index (an output index of it) or a fixed
    /// position.
    pub map: Vec<AxisMap>,
}

/// An epilogue found after a contraction.
#[derive(Clone, Debug, PartialEq)]
pub struct Epilogue {
    /// Positions in the function's ops of the maps it covers, in order; the last one's value is
    /// what the GETT stores.
    pub ops: Vec<usize>,
    /// The steps, in order.
    pub steps: Vec<EpilogueStep>,
    /// The factor of `scale` or `divide`: an expression of constants and dims, in the
    /// contraction's dtype.
    pub factor: Option<Expr>,
    /// The bias.
    pub bias: Option<Bias>,
    /// The dtype of `cast`.
    pub cast: Option<DType>,
}

impl Epilogue {
    /// The op whose value the GETT stores.
    pub fn last(&self) -> usize {
        self.ops.last().copied().unwrap_or_default()
    }
}

/// The steps of one map's body over its chain input, with their operands.
#[derive(Default)]
struct Parsed {
    steps: Vec<EpilogueStep>,
    factor: Option<Expr>,
    bias: Option<u32>,
    cast: Option<DType>,
}

/// Whether `e` varies with no index and reads no input (constants, dims and arithmetic on them).
fn uniform(e: &Expr) -> bool {
    match e {
        Expr::Lit(_) | Expr::DimValue(..) => true,
        Expr::Unary(_, a) | Expr::Cast(_, a) => uniform(a),
        Expr::Binary(_, a, b) => uniform(a) && uniform(b),
        _ => false,
    }
}

/// Whether `e` is the literal `+0`.
fn is_zero(e: &Expr) -> bool {
    match e {
        Expr::Lit(Scalar::F32(x)) => x.to_bits() == 0,
        Expr::Lit(Scalar::F64(x)) => x.to_bits() == 0,
        _ => false,
    }
}

/// Parses `e` as input `x` under a sequence of steps (innermost first), into `out`; `bias_ok`
/// says which inputs may be a bias.
fn parse(e: &Expr, x: u32, bias_ok: &dyn Fn(u32) -> bool, out: &mut Parsed) -> bool {
    let step = |out: &mut Parsed, s| {
        out.steps.push(s);
        true
    };
    match e {
        Expr::Input(n) => *n == x,
        Expr::Binary(BinaryFn::Mul, a, b) => {
            let (inner, factor) = if uniform(b) { (a, b) } else { (b, a) };
            if !uniform(factor) || !parse(inner, x, bias_ok, out) || out.factor.is_some() {
                return false;
            }
            out.factor = Some((**factor).clone());
            step(out, EpilogueStep::Scale)
        }
        Expr::Binary(BinaryFn::Div, a, b) => {
            if !uniform(b) || !parse(a, x, bias_ok, out) || out.factor.is_some() {
                return false;
            }
            out.factor = Some((**b).clone());
            step(out, EpilogueStep::Divide)
        }
        Expr::Binary(BinaryFn::Add, a, b) => {
            let (inner, bias) = match (&**a, &**b) {
                (_, Expr::Input(n)) if *n != x && bias_ok(*n) => (a, *n),
                (Expr::Input(n), _) if *n != x && bias_ok(*n) => (b, *n),
                _ => return false,
            };
            if !parse(inner, x, bias_ok, out) || out.bias.is_some() {
                return false;
            }
            out.bias = Some(bias);
            step(out, EpilogueStep::Bias)
        }
        Expr::Unary(UnaryFn::Relu, a) => parse(a, x, bias_ok, out) && step(out, EpilogueStep::Relu),
        Expr::Binary(BinaryFn::Max, a, b) if is_zero(b) || is_zero(a) => {
            let inner = if is_zero(b) { a } else { b };
            parse(inner, x, bias_ok, out) && step(out, EpilogueStep::Relu)
        }
        Expr::Cast(t, a) => {
            if !parse(a, x, bias_ok, out) || out.cast.is_some() {
                return false;
            }
            out.cast = Some(*t);
            step(out, EpilogueStep::Cast)
        }
        _ => false,
    }
}

/// The generic of op `k` of `f`, if it exists.
fn op(f: &Function, k: usize) -> Option<&Generic> {
    f.ops.get(k).map(|op| {
        let OpKind::Generic(g) = &op.kind;
        g
    })
}

/// The epilogue after contraction `k` of `f`: with `want`, exactly those steps (an error says
/// why they are not there); without, the longest chain of maps that forms one (an error when
/// there is none). Robust to malformed IR (the verifier calls it).
pub fn find(f: &Function, k: usize, want: Option<&[EpilogueStep]>) -> Result<Epilogue, String> {
    let c = op(f, k).ok_or("the op is missing")?;
    let mut epi = Epilogue {
        ops: Vec::new(),
        steps: Vec::new(),
        factor: None,
        bias: None,
        cast: None,
    };
    let mut value = f.ops[k].result;
    let mut dtype = c.dtype;
    let mut why = String::from("no map reads the contraction's result as an epilogue");
    loop {
        if want.is_some_and(|w| w == epi.steps) {
            break;
        }
        let name = f
            .values
            .get(value.0 as usize)
            .map_or("?", |v| v.name.as_str());
        if f.results.iter().any(|r| r.value == value) {
            why = format!("%{name} is returned, so it must be stored");
            break;
        }
        let readers: Vec<usize> = (0..f.ops.len())
            .filter(|&r| op(f, r).is_some_and(|g| g.inputs.iter().any(|i| i.value == value)))
            .collect();
        let [r] = readers[..] else {
            why = format!("%{name} is read by {} ops, not one", readers.len());
            break;
        };
        let Some(e) = op(f, r) else { break };
        let reads: Vec<usize> = (0..e.inputs.len())
            .filter(|&n| e.inputs[n].value == value)
            .collect();
        let own = |n: usize| {
            let map = &e.inputs[n].map;
            map.len() == e.output.len()
                && map
                    .iter()
                    .zip(&e.output)
                    .all(|(a, o)| *a == AxisMap::Index(*o))
        };
        let (&[x], true, true) = (&reads[..], e.reduce.is_none(), r > k) else {
            why = format!("%{name} is not read once, elementwise, by a map");
            break;
        };
        if !own(x) || e.output.len() != c.output.len() {
            why = format!("%{name} is not read at the map's own indices");
            break;
        }
        let bias_ok = |n: u32| {
            e.inputs
                .get(n as usize)
                .is_some_and(|i| f.values.get(i.value.0 as usize).is_some())
        };
        let mut parsed = Parsed::default();
        let x = u32::try_from(x).unwrap_or(u32::MAX);
        if !parse(&e.body, x, &bias_ok, &mut parsed) || parsed.steps.is_empty() {
            why =
                format!("the body of the map reading %{name} is not a sequence of epilogue steps");
            break;
        }
        let mut steps = epi.steps.clone();
        steps.extend(&parsed.steps);
        let fits = in_order(&steps)
            && want.is_none_or(|w| w.starts_with(&steps))
            && (parsed.factor.is_none() || epi.factor.is_none())
            && (parsed.bias.is_none() || epi.bias.is_none());
        if !fits {
            why = format!(
                "the map reading %{name} adds steps out of order or twice ({})",
                steps
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            break;
        }
        // Every step before a cast keeps the contraction's dtype.
        let expected = parsed.cast.unwrap_or(dtype);
        if e.dtype != expected || (parsed.cast.is_none() && epi.cast.is_some()) {
            why = format!("the map reading %{name} changes the dtype outside a cast");
            break;
        }
        dtype = e.dtype;
        if let Some(n) = parsed.bias {
            // The map's index at output position `p` is the contraction's output index `p`.
            let input = &e.inputs[n as usize];
            let mut map = Vec::with_capacity(input.map.len());
            for a in &input.map {
                map.push(match a {
                    AxisMap::Fixed(p) => AxisMap::Fixed(*p),
                    AxisMap::Index(i) => match e.output.iter().position(|o| o == i) {
                        Some(p) => AxisMap::Index(c.output[p]),
                        None => {
                            why = "the bias is read at an index that is not an output".into();
                            return Err(why);
                        }
                    },
                });
            }
            epi.bias = Some(Bias {
                value: input.value,
                map,
            });
        }
        epi.factor = epi.factor.take().or(parsed.factor);
        epi.cast = epi.cast.or(parsed.cast);
        epi.steps = steps;
        epi.ops.push(r);
        value = f.ops[r].result;
    }
    match want {
        Some(w) if w != epi.steps => Err(format!(
            "the epilogue [{}] is not after the contraction: {why}",
            w.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
        )),
        _ if epi.steps.is_empty() => Err(why),
        _ => Ok(epi),
    }
}

/// Whether the epilogue fits a GEMM with M index `m` and N index `n` whose reduced outer loops
/// are `reduced_outer`, K block `kc` and K extent `k_extent` (when known): the bias reads at most
/// one of M and N (the micro-kernel adds a vector along one of them), and a cast comes after
/// the whole sum in one K block (the tile is converted as it is stored, so no partial sum is
/// stored in the cast's dtype).
pub fn fits(
    epi: &Epilogue,
    m: IndexId,
    n: IndexId,
    reduced_outer: bool,
    kc: u64,
    k_extent: Option<u64>,
) -> Result<(), String> {
    if let Some(b) = &epi.bias {
        let reads = |i: IndexId| b.map.contains(&AxisMap::Index(i));
        if reads(m) && reads(n) {
            return Err("the bias varies with both M and N; the micro-kernel adds a vector".into());
        }
    }
    if epi.cast.is_some() {
        if reduced_outer {
            return Err("a `cast` epilogue needs every summed index in the GEMM's K".into());
        }
        if k_extent.is_none_or(|k| k > kc) {
            return Err(format!(
                "a `cast` epilogue needs the whole sum in one K block: K must be known and at \
                 most kc = {kc}"
            ));
        }
    }
    Ok(())
}
