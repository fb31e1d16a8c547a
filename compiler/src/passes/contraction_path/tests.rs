use crate::ir::tensor::parser::parse_module;
use crate::ir::tensor::printer::print_module;
use crate::passes::tests::check_preserved;
use crate::rng::Rng;

#[test]
fn tucker_and_cp_compute_what_they_did() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/tucker.ein"
    ))
    .unwrap();
    let m = crate::sema::compile_source(&text).0.unwrap();
    let sizes = [
        ("I", 3),
        ("J", 4),
        ("K", 2),
        ("P", 3),
        ("Q", 2),
        ("S", 4),
        ("R", 5),
    ];
    let out = check_preserved(&m, "contraction-path", &sizes, false);
    let text = print_module(&out);
    assert_eq!(text.matches("reduce add").count(), 4, "{text}");
}

/// A random product of 2–5 factors over up to 6 indices of extent 1–4: maps with repeated
/// indices and fixed positions, some indices summed, a cast factor now and then; `dtype` is
/// the op's.
pub(crate) fn random_product(rng: &mut Rng, dtype: &str) -> String {
    let names = ["i", "j", "k", "l", "m", "n"];
    let nindices = 2 + rng.below(5);
    let extents: Vec<usize> = (0..nindices).map(|_| 1 + rng.below(4)).collect();
    let nfactors = 2 + rng.below(4);
    let mut params = Vec::new();
    let mut inputs = Vec::new();
    let mut reads = Vec::new();
    let mut carried = vec![false; nindices];
    for f in 0..nfactors {
        let rank = 1 + rng.below(3);
        let mut shape = Vec::new();
        let mut map = Vec::new();
        for _ in 0..rank {
            if rng.below(8) == 0 {
                shape.push("2".to_string());
                map.push(rng.below(2).to_string());
            } else {
                let i = rng.below(nindices);
                carried[i] = true;
                shape.push(extents[i].to_string());
                map.push(names[i].to_string());
            }
        }
        // Integers are read as i32 and converted (so that the cast path is exercised).
        let (pdtype, read) = if dtype == "i64" && rng.below(2) == 0 {
            ("i32", format!("cast<i64>(%{f})"))
        } else {
            (dtype, format!("%{f}"))
        };
        params.push(format!("%x{f}: {pdtype}[{}]", shape.join(", ")));
        inputs.push(format!("%x{f}[{}]", map.join(", ")));
        reads.push(read);
    }
    let used: Vec<usize> = (0..nindices).filter(|&i| carried[i]).collect();
    let out: Vec<usize> = used.iter().copied().filter(|_| rng.below(2) == 0).collect();
    let summed: Vec<usize> = used.iter().copied().filter(|i| !out.contains(i)).collect();
    let space: Vec<String> = out
        .iter()
        .chain(&summed)
        .map(|&i| format!("{}: {}", names[i], extents[i]))
        .collect();
    let body = reads
        .into_iter()
        .reduce(|a, b| format!("mul({a}, {b})"))
        .unwrap();
    let shape: Vec<String> = out.iter().map(|&i| extents[i].to_string()).collect();
    let ty = if shape.is_empty() {
        dtype.to_string()
    } else {
        format!("{dtype}[{}]", shape.join(", "))
    };
    let reduce = if summed.is_empty() {
        String::new()
    } else {
        let over: Vec<&str> = summed.iter().map(|&i| names[i]).collect();
        format!(" reduce add over ({})", over.join(", "))
    };
    let outs: Vec<&str> = out.iter().map(|&i| names[i]).collect();
    format!(
        "func @p({}) -> (y: {ty}) {{\n  %y = generic ({}) ins({}) -> [{}]{reduce} {{ {body} }} : {dtype}\n  return y = %y\n}}\n",
        params.join(", "),
        space.join(", "),
        inputs.join(", "),
        outs.join(", "),
    )
}

#[test]
fn random_products_keep_their_values_with_every_algorithm() {
    let mut rng = Rng::new(3);
    let mut planned = 0;
    for round in 0..120 {
        let dtype = if round % 2 == 0 { "i64" } else { "f64" };
        let text = random_product(&mut rng, dtype);
        let m = parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let algorithm = ["auto", "optimal", "dp", "greedy"][round % 4];
        let limit = if round % 3 == 0 {
            ",memory-limit=4"
        } else {
            ""
        };
        let pipeline = format!("contraction-path{{optimize={algorithm}{limit}}}");
        // Integers are exact under any grouping; floats agree to rounding.
        let out = check_preserved(&m, &pipeline, &[], dtype == "i64");
        planned += usize::from(out.funcs[0].ops.len() > 1);
    }
    assert!(planned > 30, "only {planned} products were split");
}
