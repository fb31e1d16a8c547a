//! Fresh names, for every IR level: the one routine that derives a name not used yet from a
//! base name. Values of the tensor IR (sema, autodiff, the passes through
//! [`super::tensor::builder`]), indices of an op, and buffers and values of the loop IR
//! (lowering) are all named this way, so dumps read alike.
//!
//! A name is the base itself when free, else the base with the first free numeric suffix:
//! `P.max`, `P.max.1`, `P.max.2`, ... for values (separator `.`), `i_1`, `i_2`, ... for
//! indices (separator `_`, since `.ein` names cannot contain a dot).

use std::collections::{HashMap, HashSet};

/// `base` if `used` lacks it, else the first of `base{sep}1`, `base{sep}2`, ... that `used`
/// lacks; the name returned is added to `used`.
pub fn fresh_in(used: &mut HashSet<String>, base: &str, sep: char) -> String {
    let name = if used.contains(base) {
        suffixed_in(used, base, sep)
    } else {
        base.to_string()
    };
    used.insert(name.clone());
    name
}

/// The first of `base{sep}1`, `base{sep}2`, ... that `used` lacks, even when `base` itself is
/// free (for a name that must differ visibly from its base); it is added to `used`.
pub fn suffixed_in(used: &mut HashSet<String>, base: &str, sep: char) -> String {
    let mut n = 1u64;
    loop {
        let name = format!("{base}{sep}{n}");
        if used.insert(name.clone()) {
            return name;
        }
        n += 1;
    }
}

/// Hands out names unique in one namespace (a function's values, or a loop function's buffers
/// and values together, so a dump never shows one name for two things).
#[derive(Clone, Debug, Default)]
pub struct Namer {
    used: HashSet<String>,
    counters: HashMap<String, u64>,
}

impl Namer {
    /// A namer for which `names` are taken.
    pub fn with_used<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Namer {
        Namer {
            used: names.into_iter().map(Into::into).collect(),
            counters: HashMap::new(),
        }
    }

    /// Marks `name` as taken; false when it already was.
    pub fn reserve(&mut self, name: &str) -> bool {
        self.used.insert(name.to_string())
    }

    /// Whether `name` is taken.
    pub fn is_used(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    /// `base` itself if free, else `base.1`, `base.2`, ... ([`fresh_in`] with `.`).
    pub fn fresh(&mut self, base: &str) -> String {
        fresh_in(&mut self.used, base, '.')
    }

    /// The first free name of `prefix0`, `prefix1`, ... (for values with no source name; the
    /// count per prefix is remembered, so numbering is linear in the names handed out).
    pub fn numbered(&mut self, prefix: &str) -> String {
        let counter = self.counters.entry(prefix.to_string()).or_insert(0);
        loop {
            let name = format!("{prefix}{counter}");
            *counter += 1;
            if self.used.insert(name.clone()) {
                return name;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_take_the_first_free_suffix() {
        let mut n = Namer::with_used(["x", "x.1", "y"]);
        assert_eq!(n.fresh("z"), "z");
        assert_eq!(n.fresh("z"), "z.1");
        assert_eq!(n.fresh("x"), "x.2");
        assert_eq!(n.fresh("x"), "x.3");
        assert!(!n.reserve("y") && n.reserve("w") && n.is_used("w"));
        assert_eq!(n.numbered("c"), "c0");
        assert!(n.reserve("c2"));
        assert_eq!(n.numbered("c"), "c1");
        assert_eq!(n.numbered("c"), "c3");
        let mut used: HashSet<String> = ["i".to_string()].into();
        assert_eq!(suffixed_in(&mut used, "p", '_'), "p_1");
        assert_eq!(fresh_in(&mut used, "i", '_'), "i_1");
        assert_eq!(fresh_in(&mut used, "i", '_'), "i_2");
    }
}
