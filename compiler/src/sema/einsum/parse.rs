//! The syntax of a subscripts string: operand terms separated by `,`, an optional `->` and
//! output term. Each term is a list of letters with at most one `...`; spaces are ignored.
//!
//! This layer knows nothing of shapes: it rejects only what numpy rejects before looking at
//! the operands (bad characters, stray `.`, `-` or `>`, two ellipses in a term, two `->`,
//! a `,` in the output).

use super::EinsumError;
use std::ops::Range;

/// One item of a term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Item {
    /// A letter label and its byte range in the subscripts.
    Label(u8, Range<usize>),
    /// `...` and its byte range.
    Ellipsis(Range<usize>),
}

/// The labels of one operand (or of the output), in axis order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Term {
    /// The items in order.
    pub items: Vec<Item>,
    /// Byte range of the term in the subscripts (spaces included).
    pub span: Range<usize>,
}

impl Term {
    /// Number of letter labels.
    pub fn label_count(&self) -> usize {
        self.items
            .iter()
            .filter(|it| matches!(it, Item::Label(..)))
            .count()
    }

    /// True when the term has a `...`.
    pub fn has_ellipsis(&self) -> bool {
        self.items.iter().any(|it| matches!(it, Item::Ellipsis(_)))
    }
}

/// A parsed subscripts string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Subscripts {
    /// One term per operand.
    pub inputs: Vec<Term>,
    /// The term after `->`, if the string has one (explicit mode).
    pub output: Option<Term>,
}

/// Parses a subscripts string.
pub(super) fn parse(s: &str) -> Result<Subscripts, EinsumError> {
    check_characters(s)?;
    let arrows: Vec<usize> = s.match_indices("->").map(|(i, _)| i).collect();
    if let Some(&second) = arrows.get(1) {
        return Err(EinsumError::at(
            "the subscripts contain `->` more than once",
            second..second + 2,
        ));
    }
    let arrow = arrows.first().copied();
    // Every `-` and `>` must belong to the one arrow.
    for (i, c) in s.char_indices() {
        let in_arrow = arrow.is_some_and(|a| i == a || i == a + 1);
        if (c == '-' || c == '>') && !in_arrow {
            return Err(EinsumError::at(
                format!("`{c}` is only valid as part of `->`"),
                i..i + 1,
            ));
        }
    }
    let input_end = arrow.unwrap_or(s.len());
    let mut inputs = Vec::new();
    let mut start = 0;
    for piece in s[..input_end].split(',') {
        inputs.push(parse_term(s, start..start + piece.len())?);
        start += piece.len() + 1;
    }
    let output = match arrow {
        None => None,
        Some(a) => {
            let out = a + 2..s.len();
            if let Some(comma) = s[out.clone()].find(',') {
                let at = out.start + comma;
                return Err(EinsumError::at(
                    "the output after `->` is a single term: it cannot contain `,`",
                    at..at + 1,
                ));
            }
            Some(parse_term(s, out)?)
        }
    };
    Ok(Subscripts { inputs, output })
}

/// Rejects characters other than ASCII letters, `,`, `-`, `>`, `.` and spaces (numpy ignores
/// only the space character, not tabs or other whitespace).
fn check_characters(s: &str) -> Result<(), EinsumError> {
    for (i, c) in s.char_indices() {
        if !(c.is_ascii_alphabetic() || matches!(c, ',' | '-' | '>' | '.' | ' ')) {
            return Err(EinsumError::at(
                format!("invalid character {c:?} in the subscripts: labels must be ASCII letters"),
                i..i + c.len_utf8(),
            ));
        }
    }
    Ok(())
}

/// Parses the term at `range` of `s` (which holds only letters, `.` and spaces there).
fn parse_term(s: &str, range: Range<usize>) -> Result<Term, EinsumError> {
    let bytes = s.as_bytes();
    let mut items = Vec::new();
    let mut ellipsis: Option<Range<usize>> = None;
    let mut i = range.start;
    while i < range.end {
        let b = bytes.get(i).copied().unwrap_or(b' ');
        if b == b'.' {
            let is_ellipsis =
                i + 3 <= range.end && bytes.get(i..i + 3).is_some_and(|w| w == b"...");
            if !is_ellipsis {
                return Err(EinsumError::at(
                    "`.` is only valid as part of an ellipsis `...`",
                    i..i + 1,
                ));
            }
            if let Some(first) = &ellipsis {
                return Err(EinsumError::at(
                    format!(
                        "a term may contain only one `...` (the first is at byte {})",
                        first.start
                    ),
                    i..i + 3,
                ));
            }
            ellipsis = Some(i..i + 3);
            items.push(Item::Ellipsis(i..i + 3));
            i += 3;
        } else {
            if b.is_ascii_alphabetic() {
                items.push(Item::Label(b, i..i + 1));
            }
            i += 1;
        }
    }
    Ok(Term { items, span: range })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(t: &Term) -> String {
        t.items
            .iter()
            .map(|it| match it {
                Item::Label(c, _) => char::from(*c).to_string(),
                Item::Ellipsis(_) => "...".to_string(),
            })
            .collect()
    }

    #[test]
    fn terms_ignore_spaces_and_keep_byte_ranges() {
        let p = parse(" i j , j... k -> ik").unwrap();
        assert_eq!(p.inputs.len(), 2);
        assert_eq!(labels(&p.inputs[0]), "ij");
        assert_eq!(labels(&p.inputs[1]), "j...k");
        assert_eq!(p.inputs[1].items[1], Item::Ellipsis(8..11));
        assert_eq!(p.inputs[0].items[1], Item::Label(b'j', 3..4));
        assert_eq!(labels(p.output.as_ref().unwrap()), "ik");
    }

    #[test]
    fn empty_strings_are_one_empty_term() {
        let p = parse("").unwrap();
        assert_eq!(p.inputs.len(), 1);
        assert!(p.inputs[0].items.is_empty());
        assert_eq!(p.output, None);
        let p = parse("->").unwrap();
        assert_eq!(p.inputs.len(), 1);
        assert!(p.output.unwrap().items.is_empty());
        assert_eq!(parse(",,a,->a").unwrap().inputs.len(), 4);
    }

    #[test]
    fn syntax_errors_point_at_the_offending_bytes() {
        let cases: [(&str, Range<usize>); 11] = [
            ("i%...", 1..2),
            ("i->&", 3..4),
            ("ié", 1..3),
            ("i\tj", 1..2),
            ("i..", 1..2),
            ("... ...", 4..7),
            ("i->i-", 4..5),
            ("ij->j,i", 5..6),
            ("->,->", 3..5),
            ("i>j", 1..2),
            ("....", 3..4),
        ];
        for (s, want) in cases {
            let err = parse(s).unwrap_err();
            assert_eq!(err.span, Some(want), "{s:?}: {}", err.message);
        }
    }
}
