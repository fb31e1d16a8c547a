//! The `.ein` lexer: source text to a flat list of spanned tokens, built on `logos`.
//!
//! Whitespace (including newlines) and `#` comments are skipped: the grammar is
//! newline-insensitive. Characters that start no token are reported, merged into one diagnostic
//! per run, and lexing continues after them, so the parser always gets a token list ending in
//! [`Tok::Eof`].

use crate::diag::{Diagnostic, Span};
use logos::Logos;

/// The kinds of token. Identifier, number and string text is recovered from the source through
/// the token's span.
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"#[^\n]*", allow_greedy = true))]
pub enum Tok {
    /// `dims`
    #[token("dims")]
    Dims,
    /// `kernel`
    #[token("kernel")]
    Kernel,
    /// `inf`
    #[token("inf")]
    Inf,
    /// A name: `[A-Za-z_][A-Za-z0-9_]*`.
    #[regex("[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    /// `2`, `0.5`, `1e-3`, `1.5E+3`.
    #[regex(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")]
    Number,
    /// `"ij,jk->ik"` (no escapes).
    #[regex(r#""[^"\n]*""#)]
    Str,
    /// A string missing its closing quote before the end of the line; reported by [`lex`],
    /// which hands the parser a [`Tok::Str`] instead so that parsing can go on.
    #[regex(r#""[^"\n]*"#)]
    UnterminatedStr,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `,`
    #[token(",")]
    Comma,
    /// `:`
    #[token(":")]
    Colon,
    /// `;`
    #[token(";")]
    Semi,
    /// `=`
    #[token("=")]
    Assign,
    /// `->`
    #[token("->")]
    Arrow,
    /// `+`
    #[token("+")]
    Plus,
    /// `-`
    #[token("-")]
    Minus,
    /// `*`
    #[token("*")]
    Star,
    /// `/`
    #[token("/")]
    Slash,
    /// `<`
    #[token("<")]
    Lt,
    /// `<=`
    #[token("<=")]
    Le,
    /// `>`
    #[token(">")]
    Gt,
    /// `>=`
    #[token(">=")]
    Ge,
    /// `==`
    #[token("==")]
    EqEq,
    /// `!=`
    #[token("!=")]
    Ne,
    /// `&&`
    #[token("&&")]
    AndAnd,
    /// `||`
    #[token("||")]
    OrOr,
    /// `!`
    #[token("!")]
    Bang,
    /// `@` (not an operator of the language; parsed so that it can be explained)
    #[token("@")]
    At,
    /// The end of the text (never produced by logos; appended by [`lex`]).
    Eof,
}

impl Tok {
    /// How the token kind is named in "expected ..., found ..." messages.
    pub fn describe(self) -> &'static str {
        match self {
            Tok::Dims => "`dims`",
            Tok::Kernel => "`kernel`",
            Tok::Inf => "`inf`",
            Tok::Ident => "a name",
            Tok::Number => "a number",
            Tok::Str | Tok::UnterminatedStr => "a string literal",
            Tok::LParen => "`(`",
            Tok::RParen => "`)`",
            Tok::LBracket => "`[`",
            Tok::RBracket => "`]`",
            Tok::LBrace => "`{`",
            Tok::RBrace => "`}`",
            Tok::Comma => "`,`",
            Tok::Colon => "`:`",
            Tok::Semi => "`;`",
            Tok::Assign => "`=`",
            Tok::Arrow => "`->`",
            Tok::Plus => "`+`",
            Tok::Minus => "`-`",
            Tok::Star => "`*`",
            Tok::Slash => "`/`",
            Tok::Lt => "`<`",
            Tok::Le => "`<=`",
            Tok::Gt => "`>`",
            Tok::Ge => "`>=`",
            Tok::EqEq => "`==`",
            Tok::Ne => "`!=`",
            Tok::AndAnd => "`&&`",
            Tok::OrOr => "`||`",
            Tok::Bang => "`!`",
            Tok::At => "`@`",
            Tok::Eof => "the end of the file",
        }
    }
}

/// A token and where it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// What kind of token.
    pub kind: Tok,
    /// Its bytes in the source.
    pub span: Span,
}

/// Splits `text` into tokens, always ending with [`Tok::Eof`], and reports every character
/// that starts no token and every unterminated string.
pub fn lex(text: &str) -> (Vec<Token>, Vec<Diagnostic>) {
    let mut tokens = Vec::new();
    let mut diags = Vec::new();
    // A run of adjacent bad bytes becomes one diagnostic, so binary junk does not drown the
    // real errors.
    let mut bad_run: Option<Span> = None;
    let mut lexer = Tok::lexer(text);
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let span = Span::new(range.start, range.end);
        match result {
            Err(()) => {
                bad_run = Some(match bad_run {
                    Some(run) if run.end == span.start => run.to(span),
                    Some(run) => {
                        diags.push(bad_characters(text, run));
                        span
                    }
                    None => span,
                });
                continue;
            }
            Ok(kind) => {
                if let Some(run) = bad_run.take() {
                    diags.push(bad_characters(text, run));
                }
                let kind = if kind == Tok::UnterminatedStr {
                    diags.push(
                        Diagnostic::error(span, "unterminated string literal")
                            .with_label("this string has no closing `\"`")
                            .with_help("strings cannot span lines; close it with `\"`"),
                    );
                    Tok::Str
                } else {
                    kind
                };
                tokens.push(Token { kind, span });
            }
        }
    }
    if let Some(run) = bad_run {
        diags.push(bad_characters(text, run));
    }
    tokens.push(Token {
        kind: Tok::Eof,
        span: Span::new(text.len(), text.len()),
    });
    (tokens, diags)
}

/// The diagnostic for a run of bytes that start no token, naming the first character.
fn bad_characters(text: &str, run: Span) -> Diagnostic {
    let slice = text.get(run.range()).unwrap_or("");
    let Some(first) = slice.chars().next() else {
        return Diagnostic::error(run, "unexpected bytes in the source");
    };
    let count = slice.chars().count();
    let shown = if first.is_control() || first.is_whitespace() {
        format!("{:?}", first).trim_matches('\'').to_string()
    } else {
        first.to_string()
    };
    let codepoint = format!("U+{:04X}", u32::from(first));
    let message = if count == 1 {
        format!("unexpected character `{shown}` ({codepoint})")
    } else {
        format!(
            "unexpected character `{shown}` ({codepoint}) and {} more after it",
            count - 1
        )
    };
    let diag = Diagnostic::error(run, message).with_label("not part of any token");
    match first {
        '&' => diag.with_help("logical and is written `&&`"),
        '|' => diag.with_help("logical or is written `||`"),
        '\'' => diag.with_help("string literals use double quotes: `\"ij,jk->ik\"`"),
        '.' => diag.with_help("numbers start with a digit: write `0.5`, not `.5`"),
        c if !c.is_ascii() && c.is_alphabetic() => {
            diag.with_help("names use ASCII letters, digits and `_` only")
        }
        _ => diag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds and source slices of every token except the final `Eof`.
    fn kinds_and_text(text: &str) -> Vec<(Tok, &str)> {
        let (tokens, diags) = lex(text);
        assert!(diags.is_empty(), "{diags:?}");
        tokens
            .iter()
            .filter(|t| t.kind != Tok::Eof)
            .map(|t| (t.kind, &text[t.span.range()]))
            .collect()
    }

    #[test]
    fn numbers_in_every_written_form() {
        assert_eq!(
            kinds_and_text("2 0.5 1e-3 1.5E+3 10"),
            vec![
                (Tok::Number, "2"),
                (Tok::Number, "0.5"),
                (Tok::Number, "1e-3"),
                (Tok::Number, "1.5E+3"),
                (Tok::Number, "10"),
            ]
        );
    }

    #[test]
    fn a_number_followed_by_a_name_splits_where_the_number_ends() {
        assert_eq!(
            kinds_and_text("1e x2"),
            vec![(Tok::Number, "1"), (Tok::Ident, "e"), (Tok::Ident, "x2")]
        );
    }

    #[test]
    fn keywords_are_not_names_but_longer_words_are() {
        assert_eq!(
            kinds_and_text("dims kernel inf dimsx _kernel infinity"),
            vec![
                (Tok::Dims, "dims"),
                (Tok::Kernel, "kernel"),
                (Tok::Inf, "inf"),
                (Tok::Ident, "dimsx"),
                (Tok::Ident, "_kernel"),
                (Tok::Ident, "infinity"),
            ]
        );
    }

    #[test]
    fn every_punctuation_token() {
        let text = "( ) [ ] { } , : ; = -> + - * / < <= > >= == != && || !";
        let kinds: Vec<Tok> = kinds_and_text(text).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::LParen,
                Tok::RParen,
                Tok::LBracket,
                Tok::RBracket,
                Tok::LBrace,
                Tok::RBrace,
                Tok::Comma,
                Tok::Colon,
                Tok::Semi,
                Tok::Assign,
                Tok::Arrow,
                Tok::Plus,
                Tok::Minus,
                Tok::Star,
                Tok::Slash,
                Tok::Lt,
                Tok::Le,
                Tok::Gt,
                Tok::Ge,
                Tok::EqEq,
                Tok::Ne,
                Tok::AndAnd,
                Tok::OrOr,
                Tok::Bang,
            ]
        );
    }

    #[test]
    fn comments_and_newlines_are_skipped_and_spans_are_byte_offsets() {
        let text = "a # comment = [\n  \"ij->i\"";
        let (tokens, diags) = lex(text);
        assert!(diags.is_empty());
        assert_eq!(
            tokens,
            vec![
                Token {
                    kind: Tok::Ident,
                    span: Span::new(0, 1)
                },
                Token {
                    kind: Tok::Str,
                    span: Span::new(18, 25)
                },
                Token {
                    kind: Tok::Eof,
                    span: Span::new(25, 25)
                },
            ]
        );
    }

    #[test]
    fn bad_characters_are_named_and_lexing_continues() {
        let text = "a $ b é c";
        let (tokens, diags) = lex(text);
        let kinds: Vec<Tok> = tokens.iter().map(|t| t.kind).collect();
        assert_eq!(kinds, vec![Tok::Ident, Tok::Ident, Tok::Ident, Tok::Eof]);
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].message, "unexpected character `$` (U+0024)");
        assert_eq!(diags[0].primary.span, Span::new(2, 3));
        assert_eq!(diags[1].message, "unexpected character `é` (U+00E9)");
        assert_eq!(diags[1].primary.span, Span::new(6, 8));
        assert_eq!(
            diags[1].help.as_deref(),
            Some("names use ASCII letters, digits and `_` only")
        );
    }

    #[test]
    fn a_run_of_junk_is_one_diagnostic() {
        let (_, diags) = lex("x = $$$` y");
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].message,
            "unexpected character `$` (U+0024) and 3 more after it"
        );
        assert_eq!(diags[0].primary.span, Span::new(4, 8));
    }

    #[test]
    fn single_ampersand_suggests_the_double_form() {
        let (_, diags) = lex("a & b");
        assert_eq!(diags.len(), 1);
        assert_eq!(
            diags[0].help.as_deref(),
            Some("logical and is written `&&`")
        );
    }

    #[test]
    fn unterminated_string_is_reported_and_becomes_a_string_token() {
        let (tokens, diags) = lex("einsum(\"ij,jk\nA");
        let kinds: Vec<Tok> = tokens.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![Tok::Ident, Tok::LParen, Tok::Str, Tok::Ident, Tok::Eof]
        );
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "unterminated string literal");
        assert_eq!(diags[0].primary.span, Span::new(7, 13));
    }
}
