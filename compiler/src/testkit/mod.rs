//! Test machinery shared by the differential tests (`tests/differential*.rs`) and the fuzz
//! targets (`fuzz/`): a generator of random well-typed programs driven by a byte string
//! ([`choices`], [`program`]), arguments in random layouts ([`layout`]) and the differential
//! oracle with its shrinker ([`differential`]). `docs/testing.md` describes how the layers of
//! testing use them.

pub mod choices;
pub mod differential;
pub mod files;
pub mod layout;
pub mod program;

#[cfg(test)]
mod tests;
