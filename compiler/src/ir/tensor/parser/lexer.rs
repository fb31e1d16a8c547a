//! Splits tensor IR text into tokens. Whitespace and `//` comments separate tokens and are
//! otherwise ignored; names follow the rules of [`super::super::printer::name`].

use super::IrParseError;
use crate::ir::tensor::printer::is_name_char;

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A bare name or keyword: `[A-Za-z_][A-Za-z0-9_.]*`.
    Ident(String),
    /// A quoted name, unescaped.
    Quoted(String),
    /// `%name` or `%"name"`: a value.
    Value(String),
    /// `%7`: an input of the enclosing generic's body.
    Input(u32),
    /// `@name` or `@"name"`: a function.
    Func(String),
    /// Decimal digits.
    Int(String),
    /// `0x` and hex digits (the text after `0x`).
    Hex(String),
    /// A decimal with a fraction or an exponent, e.g. `2.5`, `1e-7`.
    Float(String),
    /// `->`
    Arrow,
    /// One of `( ) [ ] { } , : = < > -`.
    Punct(char),
    /// The end of the text.
    Eof,
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub tok: Tok,
    pub offset: usize,
}

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub(super) fn lex(text: &str) -> Result<Vec<Token>, IrParseError> {
    let mut lx = Lexer { text, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia();
        let offset = lx.pos;
        let Some(c) = lx.peek() else {
            out.push(Token {
                tok: Tok::Eof,
                offset,
            });
            return Ok(out);
        };
        let tok = match c {
            '%' => {
                lx.bump();
                if lx.peek() == Some('"') {
                    Tok::Value(lx.quoted()?)
                } else {
                    let word = lx.word();
                    if word.is_empty() {
                        return Err(lx.error(offset, "expected a value name after `%`"));
                    } else if word.bytes().all(|b| b.is_ascii_digit()) {
                        Tok::Input(word.parse().map_err(|_| {
                            lx.error(offset, format!("input number `%{word}` is too large"))
                        })?)
                    } else if word.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                        return Err(lx.error(
                            offset,
                            format!(
                                "`%{word}` is not a value name: a bare name starts with a letter \
                                 or `_`; quote other names, as in `%\"{word}\"`"
                            ),
                        ));
                    } else {
                        Tok::Value(word.to_string())
                    }
                }
            }
            '@' => {
                lx.bump();
                if lx.peek() == Some('"') {
                    Tok::Func(lx.quoted()?)
                } else if lx
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                {
                    Tok::Func(lx.word().to_string())
                } else {
                    return Err(lx.error(offset, "expected a function name after `@`"));
                }
            }
            '"' => Tok::Quoted(lx.quoted()?),
            c if c.is_ascii_alphabetic() || c == '_' => Tok::Ident(lx.word().to_string()),
            c if c.is_ascii_digit() => lx.number(),
            '-' => {
                lx.bump();
                if lx.peek() == Some('>') {
                    lx.bump();
                    Tok::Arrow
                } else {
                    Tok::Punct('-')
                }
            }
            '(' | ')' | '[' | ']' | '{' | '}' | ',' | ':' | '=' | '<' | '>' => {
                lx.bump();
                Tok::Punct(c)
            }
            c => {
                return Err(lx.error(
                    offset,
                    format!("unexpected character `{}`", c.escape_debug()),
                ))
            }
        };
        out.push(Token { tok, offset });
    }
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> IrParseError {
        IrParseError::at(self.text, offset, message)
    }

    fn skip_trivia(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    /// A run of name characters (letters, digits, `_`, `.`).
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.bump();
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    /// A quoted name starting at the current `"`, unescaped.
    fn quoted(&mut self) -> Result<String, IrParseError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None | Some('\n') => {
                    return Err(self.error(start, "unterminated quoted name"));
                }
                Some('"') => return Ok(out),
                Some('\\') => {
                    match self.bump() {
                        Some('"') => out.push('"'),
                        Some('\\') => out.push('\\'),
                        Some('u') if self.peek() == Some('{') => {
                            self.bump();
                            let hex = self.word().to_string();
                            let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                            match (c, self.bump()) {
                                (Some(c), Some('}')) => out.push(c),
                                _ => return Err(self.error(at, "bad `\\u{...}` escape")),
                            }
                        }
                        _ => return Err(self.error(
                            at,
                            "unknown escape: a quoted name allows `\\\"`, `\\\\` and `\\u{hex}`",
                        )),
                    }
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// An integer, hex integer or decimal float (without sign).
    fn number(&mut self) -> Tok {
        let start = self.pos;
        if self.rest().starts_with("0x") {
            self.pos += 2;
            let digits = self.word().to_string();
            return Tok::Hex(digits);
        }
        self.digits();
        let mut float = false;
        let starts_digit = |s: &str| s.starts_with(|c: char| c.is_ascii_digit());
        if self.rest().strip_prefix('.').is_some_and(starts_digit) {
            float = true;
            self.bump();
            self.digits();
        }
        let r = self.rest();
        if let Some(after) = r.strip_prefix(['e', 'E']) {
            let after = after.strip_prefix(['+', '-']).unwrap_or(after);
            if starts_digit(after) {
                float = true;
                self.pos += r.len() - after.len();
                self.digits();
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or("").to_string();
        if float {
            Tok::Float(text)
        } else {
            Tok::Int(text)
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
    }
}
