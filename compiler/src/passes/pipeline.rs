//! Pipeline strings: `pass,pass{option=value},...`, checked against the registry and the IR
//! levels before anything runs.
//!
//! Grammar: a comma-separated list of pass names (an empty string is the empty pipeline); a
//! name may be followed by `{key=value ...}` with options separated by commas or spaces.
//! Whitespace around names and options is ignored.

use super::registry::{self, Options, PassInfo};
use super::{Level, Pass, PassContext};
use std::fmt;

/// One pass of a pipeline with its option values.
pub struct Step {
    /// The registry entry.
    pub info: &'static PassInfo,
    /// The options as given (defaults filled in).
    pub options: Options,
    /// The pass, built from the options.
    pub pass: Box<dyn Pass>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("pass", &self.info.name)
            .field("options", &self.options)
            .finish()
    }
}

/// A parsed pipeline.
#[derive(Debug, Default)]
pub struct Pipeline {
    /// The passes in the order they run.
    pub steps: Vec<Step>,
}

impl Pipeline {
    /// Parses a pipeline string for the host with no extents known ([`PassContext::default`]);
    /// errors name what is wrong and list what exists.
    pub fn parse(text: &str) -> Result<Pipeline, String> {
        Pipeline::parse_with(text, &PassContext::default())
    }

    /// Parses a pipeline string, building each pass with what `ctx` says about the
    /// compilation.
    pub fn parse_with(text: &str, ctx: &PassContext) -> Result<Pipeline, String> {
        let mut steps = Vec::new();
        for item in split_top_level(text)? {
            let item = item.trim();
            if item.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(format!("empty pass name in pipeline `{text}`"));
            }
            let (name, opts) = match item.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').ok_or_else(|| {
                        format!("`{item}`: options must end with `}}` and nothing may follow it")
                    })?;
                    (name.trim(), Some(body))
                }
                None => (item, None),
            };
            let info = registry::lookup(name).ok_or_else(|| {
                format!(
                    "unknown pass `{name}`; the passes are: {}",
                    registry::names()
                )
            })?;
            let options = parse_options(info, opts.unwrap_or(""))?;
            steps.push(Step {
                pass: (info.build)(&options, ctx),
                info,
                options,
            });
        }
        Ok(Pipeline { steps })
    }

    /// The pass names in order, comma-separated.
    pub fn names(&self) -> String {
        self.steps
            .iter()
            .map(|s| s.info.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks that each pass reads the level the previous one produced (the first reads
    /// `start`); returns the level of the pipeline's result.
    pub fn check_levels(&self, start: Level) -> Result<Level, String> {
        let mut level = start;
        let mut prev: Option<&str> = None;
        for step in &self.steps {
            if step.info.input != level {
                let from = match prev {
                    Some(p) => format!("after `{p}` the IR is at {level} level"),
                    None => format!("the input is {level} IR"),
                };
                return Err(format!(
                    "pass `{}` reads {} IR, but {from}",
                    step.info.name, step.info.input
                ));
            }
            level = step.info.output;
            prev = Some(step.info.name);
        }
        Ok(level)
    }
}

/// The pipeline as a string that parses back to it: each pass with the options that differ
/// from their defaults (`delta-elim,eps-expand{max-rank=3},dce`).
impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, step) in self.steps.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            f.write_str(step.info.name)?;
            let changed: Vec<String> = step
                .info
                .options
                .iter()
                .filter_map(|spec| {
                    let v = step.options.get(spec.name)?;
                    (v != spec.default).then(|| format!("{}={}", spec.name, spec.show(v)))
                })
                .collect();
            if !changed.is_empty() {
                write!(f, "{{{}}}", changed.join(","))?;
            }
        }
        Ok(())
    }
}

/// Splits at commas that are not inside braces.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' if depth == 0 => depth = 1,
            '{' => return Err(format!("nested `{{` in pipeline `{text}`")),
            '}' if depth == 1 => depth = 0,
            '}' => return Err(format!("unmatched `}}` in pipeline `{text}`")),
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("unclosed `{{` in pipeline `{text}`"));
    }
    items.push(&text[start..]);
    Ok(items)
}

/// Parses `key=value` options of `info` (separated by commas or whitespace), filling in
/// defaults.
fn parse_options(info: &PassInfo, text: &str) -> Result<Options, String> {
    let mut values: Vec<(&'static str, u64)> =
        info.options.iter().map(|o| (o.name, o.default)).collect();
    let known = || {
        if info.options.is_empty() {
            format!("`{}` takes no options", info.name)
        } else {
            let list: Vec<&str> = info.options.iter().map(|o| o.name).collect();
            format!("the options of `{}` are: {}", info.name, list.join(", "))
        }
    };
    for item in text.split(|c: char| c == ',' || c.is_whitespace()) {
        if item.is_empty() {
            continue;
        }
        let (key, value) = item.split_once('=').ok_or_else(|| {
            format!(
                "option `{item}` of `{}` needs a value: `{item}=N`",
                info.name
            )
        })?;
        let Some(spec) = info.options.iter().find(|o| o.name == key) else {
            return Err(format!("unknown option `{key}`; {}", known()));
        };
        let keyword = spec
            .keywords
            .iter()
            .find(|(k, _)| *k == value)
            .map(|&(_, v)| v);
        let number = value
            .parse::<u64>()
            .ok()
            .filter(|v| spec.takes_integers() && (spec.min..=spec.max).contains(v));
        let parsed = keyword.or(number).ok_or_else(|| {
            format!(
                "bad value `{value}` for option `{key}` of `{}`: expected {}",
                info.name,
                spec.accepted()
            )
        })?;
        if let Some(slot) = values.iter_mut().find(|(n, _)| *n == key) {
            slot.1 = parsed;
        }
    }
    Ok(Options { values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_parsed_with_defaults_and_either_separator() {
        let p = Pipeline::parse(" delta-elim , eps-expand{max-rank=3}, dce,eps-expand{ }").unwrap();
        assert_eq!(p.names(), "delta-elim, eps-expand, dce, eps-expand");
        assert_eq!(p.steps[1].options.get("max-rank"), Some(3));
        assert_eq!(p.steps[3].options.get("max-rank"), Some(4));
        assert!(Pipeline::parse("").unwrap().steps.is_empty());
    }

    #[test]
    fn errors_name_the_problem_and_list_what_exists() {
        let err = |s: &str| Pipeline::parse(s).unwrap_err();
        assert_eq!(
            err("dce,frobnicate"),
            format!(
                "unknown pass `frobnicate`; the passes are: {}",
                registry::names()
            )
        );
        assert!(registry::names().starts_with("delta-elim, eps-expand, "));
        assert_eq!(
            err("eps-expand{rank=3}"),
            "unknown option `rank`; the options of `eps-expand` are: max-rank"
        );
        assert_eq!(
            err("dce{x=1}"),
            "unknown option `x`; `dce` takes no options"
        );
        assert_eq!(
            err("eps-expand{max-rank=big}"),
            "bad value `big` for option `max-rank` of `eps-expand`: expected an integer from 2 \
             to 6"
        );
        assert_eq!(
            err("eps-expand{max-rank=1}"),
            "bad value `1` for option `max-rank` of `eps-expand`: expected an integer from 2 \
             to 6"
        );
        assert_eq!(err("dce,,dce"), "empty pass name in pipeline `dce,,dce`");
        assert_eq!(err("dce{"), "unclosed `{` in pipeline `dce{`");
        assert_eq!(
            err("eps-expand{max-rank}"),
            "option `max-rank` of `eps-expand` needs a value: `max-rank=N`"
        );
    }

    #[test]
    fn levels_must_chain() {
        let p = Pipeline::parse("dce,lower-to-loops,dce").unwrap();
        assert_eq!(
            p.check_levels(Level::Tensor).unwrap_err(),
            "pass `dce` reads tensor IR, but after `lower-to-loops` the IR is at loop level"
        );
        assert_eq!(
            p.check_levels(Level::Loop).unwrap_err(),
            "pass `dce` reads tensor IR, but the input is loop IR"
        );
        let p = Pipeline::parse("dce,lower-to-loops").unwrap();
        assert_eq!(p.check_levels(Level::Tensor), Ok(Level::Loop));
    }
}
