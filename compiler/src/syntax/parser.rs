//! The recursive-descent parser: tokens to [`ast::Program`], with error recovery.
//!
//! Every error is recorded as a [`Diagnostic`] and parsing goes on: a bad statement is skipped
//! up to the next statement start, `;` or closing brace; a bad item up to the next `dims` or
//! `kernel`. No input panics or recurses without bound: expression nesting is capped at
//! [`MAX_NESTING`], and every loop consumes a token or stops.

use super::ast::{
    BinOp, Derivative, DimDecl, DimsDecl, Expr, ExprKind, GradKernel, Ident, IndexExpr,
    IndexExtent, Item, Kernel, Program, RawItem, RawValue, ScheduleAnnotation, ShapeDim, Stmt,
    TensorDecl, UnOp,
};
use super::lexer::{lex, Tok, Token};
use crate::diag::{closest, Diagnostic, Span};
use einc_runtime::DType;

/// The deepest nesting of parentheses, calls, reductions and prefix operators accepted in one
/// expression. Deeper input is rejected rather than risking the stack.
pub const MAX_NESTING: usize = 200;

/// Parses a whole file. Returns the (possibly partial) program and every diagnostic found.
pub fn parse(text: &str) -> (Program, Vec<Diagnostic>) {
    let (tokens, diags) = lex(text);
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        diags,
        depth: 0,
        extents: Vec::new(),
    };
    let program = parser.program();
    (program, parser.diags)
}

/// Marks a parse that failed after its diagnostic was recorded; the caller resynchronises.
struct Failed;

type PResult<T> = Result<T, Failed>;

/// Binding strength of the binary operators, loosest first (shared with the printer, so that
/// what it prints parses back to the same tree).
pub(crate) fn precedence(op: BinOp) -> u8 {
    match op {
        BinOp::Or => 1,
        BinOp::And => 2,
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 3,
        BinOp::Add | BinOp::Sub => 4,
        BinOp::Mul | BinOp::Div | BinOp::MatMul => 5,
    }
}

/// The binding strength of prefix operators (tighter than every binary operator).
pub(crate) const PREFIX_PRECEDENCE: u8 = 6;

/// Comparisons do not chain: `a < b < c` is an error.
pub(crate) fn is_comparison(op: BinOp) -> bool {
    precedence(op) == 3
}

fn binary_op(kind: Tok) -> Option<BinOp> {
    Some(match kind {
        Tok::OrOr => BinOp::Or,
        Tok::AndAnd => BinOp::And,
        Tok::Lt => BinOp::Lt,
        Tok::Le => BinOp::Le,
        Tok::Gt => BinOp::Gt,
        Tok::Ge => BinOp::Ge,
        Tok::EqEq => BinOp::Eq,
        Tok::Ne => BinOp::Ne,
        Tok::Plus => BinOp::Add,
        Tok::Minus => BinOp::Sub,
        Tok::Star => BinOp::Mul,
        Tok::Slash => BinOp::Div,
        Tok::At => BinOp::MatMul,
        _ => return None,
    })
}

/// `lhs op rhs`. Kept out of [`Parser::binary`] so that its temporaries do not enlarge the
/// recursive frame.
#[inline(never)]
fn join(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
    Expr {
        span: lhs.span.to(rhs.span),
        kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
    }
}

struct Parser<'a> {
    text: &'a str,
    /// Always ends with an `Eof` token, which is never consumed.
    tokens: Vec<Token>,
    pos: usize,
    diags: Vec<Diagnostic>,
    /// Current expression nesting, checked against [`MAX_NESTING`].
    depth: usize,
    /// The `i: N` extents written in the statement being parsed.
    extents: Vec<IndexExtent>,
}

impl<'a> Parser<'a> {
    // ----- token access -------------------------------------------------------------------

    fn peek(&self) -> Token {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Token {
        let eof = Token {
            kind: Tok::Eof,
            span: Span::new(self.text.len(), self.text.len()),
        };
        self.tokens
            .get(self.pos + ahead)
            .or(self.tokens.last())
            .copied()
            .unwrap_or(eof)
    }

    fn at(&self, kind: Tok) -> bool {
        self.peek().kind == kind
    }

    /// Consumes and returns the next token (never moves past `Eof`).
    fn bump(&mut self) -> Token {
        let tok = self.peek();
        if tok.kind != Tok::Eof {
            self.pos += 1;
        }
        tok
    }

    fn eat(&mut self, kind: Tok) -> Option<Token> {
        if self.at(kind) {
            Some(self.bump())
        } else {
            None
        }
    }

    fn slice(&self, span: Span) -> &'a str {
        self.text.get(span.range()).unwrap_or("")
    }

    /// "a name `foo`", "`+`", "the end of the file": the found token as messages name it.
    fn describe(&self, tok: Token) -> String {
        match tok.kind {
            Tok::Ident => format!("the name `{}`", self.slice(tok.span)),
            Tok::Number => format!("the number `{}`", self.slice(tok.span)),
            _ => tok.kind.describe().to_string(),
        }
    }

    /// Records "expected X, found Y" at the next token.
    fn error_expected(&mut self, expected: &str) -> Diagnostic {
        let tok = self.peek();
        Diagnostic::error(
            tok.span,
            format!("expected {expected}, found {}", self.describe(tok)),
        )
        .with_label(format!("expected {expected}"))
    }

    fn report(&mut self, diag: Diagnostic) {
        self.diags.push(diag);
    }

    /// Consumes a token of `kind` or reports what was expected instead.
    fn expect(&mut self, kind: Tok, context: &str) -> PResult<Token> {
        if let Some(tok) = self.eat(kind) {
            return Ok(tok);
        }
        let mut diag = self.error_expected(&format!("{} {context}", kind.describe()));
        let found = self.peek().kind;
        if kind == Tok::Assign && found == Tok::EqEq {
            diag = diag.with_help("assignment is written with a single `=`");
        } else if kind == Tok::RParen && found == Tok::Assign {
            diag = diag.with_help("to compare two values, write `==`");
        }
        self.report(diag);
        Err(Failed)
    }

    fn ident(&mut self, context: &str) -> PResult<Ident> {
        if self.at(Tok::Ident) {
            let tok = self.bump();
            return Ok(Ident {
                name: self.slice(tok.span).to_string(),
                span: tok.span,
            });
        }
        let mut diag = self.error_expected(&format!("a name {context}"));
        let found = self.peek();
        if matches!(found.kind, Tok::Dims | Tok::Kernel | Tok::Inf) {
            diag = diag.with_note(format!(
                "`{}` is a keyword and cannot be used as a name",
                self.slice(found.span)
            ));
        }
        self.report(diag);
        Err(Failed)
    }

    /// An integer literal as a `u64` (extents and fixed index positions).
    fn integer(&mut self, what: &str) -> PResult<(u64, Span)> {
        let tok = self.peek();
        if tok.kind != Tok::Number {
            let diag = self.error_expected(what);
            self.report(diag);
            return Err(Failed);
        }
        self.bump();
        let digits = self.slice(tok.span);
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            self.report(
                Diagnostic::error(
                    tok.span,
                    format!("{what} must be an integer, found `{digits}`"),
                )
                .with_label("not an integer"),
            );
            return Err(Failed);
        }
        match digits.parse::<u64>() {
            Ok(n) => Ok((n, tok.span)),
            Err(_) => {
                self.report(
                    Diagnostic::error(tok.span, format!("`{digits}` is too large for {what}"))
                        .with_label("does not fit in 64 bits")
                        .with_note(format!("the largest value is {}", u64::MAX)),
                );
                Err(Failed)
            }
        }
    }

    /// Parses `item (, item)*` up to `close`, allowing a trailing comma; consumes `close`.
    /// Returns the parsed items and the closing token. On a bad item, skips to `close` (or to
    /// a token that cannot be inside the list) and reports failure.
    fn delimited<T>(
        &mut self,
        close: Tok,
        context: &str,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<(Vec<T>, Token)> {
        // Every caller has just consumed the opening bracket.
        let open = self.previous_span();
        let mut items = Vec::new();
        loop {
            if let Some(tok) = self.eat(close) {
                return Ok((items, tok));
            }
            items.push(item(self)?);
            if self.eat(Tok::Comma).is_some() {
                continue;
            }
            if let Some(tok) = self.eat(close) {
                return Ok((items, tok));
            }
            return self.unfinished_list(open, close, context);
        }
    }

    /// The span of the token before the current one.
    fn previous_span(&self) -> Span {
        self.tokens
            .get(self.pos.wrapping_sub(1))
            .map_or(self.peek().span, |t| t.span)
    }

    /// Whether the next token cannot continue an expression or a list: it starts a statement,
    /// ends one or ends the body, the item or the file. Where a closing bracket is missing,
    /// the parser notices at such a token.
    fn at_boundary(&self) -> bool {
        matches!(
            self.peek().kind,
            Tok::Semi | Tok::RBrace | Tok::Eof | Tok::Kernel | Tok::Dims
        ) || self.stmt_starts_at(self.pos)
    }

    /// "expected `)` ..., found ..." where a bracket opened at `open` is not closed: the
    /// opening bracket is shown too.
    fn unclosed(&mut self, open: Span, close: Tok, expected: &str) -> Diagnostic {
        let opener = self.slice(open).to_string();
        let mut diag = self
            .error_expected(expected)
            .with_secondary(open, format!("this `{opener}` is not closed"));
        if self.at_boundary() {
            diag = diag.with_help(format!("add {} to close the `{opener}`", close.describe()));
        }
        diag
    }

    // The error paths of the recursive functions live in separate, never-inlined functions:
    // a frame holds room for every diagnostic its function might build, and those frames are
    // stacked once per nesting level.

    #[cold]
    #[inline(never)]
    fn unfinished_list<T>(&mut self, open: Span, close: Tok, context: &str) -> PResult<T> {
        let diag = self.unclosed(
            open,
            close,
            &format!("`,` or {} {context}", close.describe()),
        );
        let diag = if self.at(Tok::Assign) && close == Tok::RParen {
            diag.with_help("to compare two values, write `==`")
        } else {
            diag
        };
        self.report(diag);
        Err(Failed)
    }

    // ----- items --------------------------------------------------------------------------

    fn program(&mut self) -> Program {
        let mut items = Vec::new();
        loop {
            let tok = self.peek();
            let parsed = match tok.kind {
                Tok::Eof => break,
                Tok::Dims => Ok(Item::Dims(self.dims())),
                Tok::Kernel => {
                    let name = (self.peek_at(1).kind == Tok::Ident).then(|| Ident {
                        name: self.slice(self.peek_at(1).span).to_string(),
                        span: self.peek_at(1).span,
                    });
                    match self.kernel() {
                        Ok(item) => Ok(item),
                        // Other items may refer to it: keep its name.
                        Err(Failed) => {
                            if let Some(name) = name {
                                items.push(Item::Broken(name));
                            }
                            Err(Failed)
                        }
                    }
                }
                Tok::Semi => {
                    self.bump();
                    continue;
                }
                _ => {
                    let mut diag = self.error_expected("`dims` or `kernel`");
                    let word = self.slice(tok.span);
                    if tok.kind == Tok::Ident {
                        if let Some(k) = closest(word, ["dims", "kernel"]) {
                            diag = diag.with_help(format!("did you mean `{k}`?"));
                        }
                    }
                    if self.stmt_starts_at(self.pos) {
                        diag = diag.with_help(
                            "statements belong inside a kernel body: \
                             `kernel NAME(INPUTS) -> (OUTPUTS) { ... }`",
                        );
                    }
                    self.report(diag);
                    Err(Failed)
                }
            };
            match parsed {
                Ok(item) => items.push(item),
                Err(Failed) => self.skip_to_item(),
            }
        }
        Program { items }
    }

    /// Skips up to the next `dims`, `kernel` or the end. (Progress is certain: item parsers
    /// consume their keyword before they can fail, and other tokens are skipped here.)
    fn skip_to_item(&mut self) {
        while !matches!(self.peek().kind, Tok::Dims | Tok::Kernel | Tok::Eof) {
            self.bump();
        }
    }

    /// `dims T, D = 16, K`. After an error, the dims declared so far are kept (one whose
    /// extent is wrong as a symbolic dim), so that their uses are not reported again, and the
    /// rest of the item is skipped.
    fn dims(&mut self) -> DimsDecl {
        let start = self.bump().span;
        let mut dims = Vec::new();
        loop {
            let Ok(name) = self.ident("for a dim in `dims`") else {
                self.skip_to_item();
                break;
            };
            let value = if self.eat(Tok::Assign).is_some() {
                match self.integer("a dim's extent") {
                    Ok(v) => Some(v),
                    // `integer` has consumed the bad number: go on at a `,`.
                    Err(Failed) if self.at(Tok::Comma) => None,
                    Err(Failed) => {
                        dims.push(DimDecl { name, value: None });
                        self.skip_to_item();
                        break;
                    }
                }
            } else {
                None
            };
            dims.push(DimDecl { name, value });
            if self.eat(Tok::Comma).is_none() {
                break;
            }
        }
        let end = dims
            .last()
            .map_or(start, |d| d.value.map_or(d.name.span, |(_, s)| s));
        DimsDecl {
            dims,
            span: start.to(end),
        }
    }

    /// `kernel NAME(...) -> (...) { ... }` or `kernel NAME = grad(OF, wrt: [A, B])`.
    fn kernel(&mut self) -> PResult<Item> {
        let start = self.bump().span;
        let name = self.ident("for the kernel")?;
        if self.eat(Tok::Assign).is_some() {
            return self.grad(start, name).map(Item::Grad);
        }
        match self.signature(&name) {
            Ok((params, outputs)) => {
                let (body, end) = self.body(&name)?;
                Ok(Item::Kernel(Kernel {
                    name,
                    params,
                    outputs,
                    body,
                    span: start.to(end),
                }))
            }
            Err(Failed) => {
                // Still check the body, so that one file reports all its errors.
                while !matches!(
                    self.peek().kind,
                    Tok::LBrace | Tok::Kernel | Tok::Dims | Tok::Eof
                ) {
                    self.bump();
                }
                if self.at(Tok::LBrace) {
                    self.body(&name)?;
                }
                Err(Failed)
            }
        }
    }

    /// `(params) -> (outputs)`
    fn signature(&mut self, name: &Ident) -> PResult<(Vec<TensorDecl>, Vec<TensorDecl>)> {
        if !self.at(Tok::LParen) {
            let mut diag = self.error_expected(&format!("`(` or `=` after `kernel {}`", name.name));
            diag = diag.with_help(
                "a kernel is `kernel NAME(INPUTS) -> (OUTPUTS) { ... }` \
                 or `kernel NAME = grad(KERNEL, wrt: [INPUTS])`",
            );
            self.report(diag);
            return Err(Failed);
        }
        self.bump();
        let (params, _) =
            self.delimited(Tok::RParen, "in the kernel's inputs", |p| p.tensor_decl())?;
        if self.eat(Tok::Arrow).is_none() {
            let diag = self
                .error_expected("`->` after the kernel's inputs")
                .with_help(format!(
                    "declare the outputs after `->`: `kernel {}(...) -> (O: f32[N]) {{ ... }}`",
                    name.name
                ));
            self.report(diag);
            return Err(Failed);
        }
        if !self.at(Tok::LParen) {
            let diag = self
                .error_expected("`(` to start the kernel's outputs")
                .with_help(
                    "outputs are listed in parentheses, even a single one: `-> (O: f32[N])`",
                );
            self.report(diag);
            return Err(Failed);
        }
        self.bump();
        let (outputs, _) =
            self.delimited(Tok::RParen, "in the kernel's outputs", |p| p.tensor_decl())?;
        Ok((params, outputs))
    }

    /// `X: f32[T, D]`, `s: f32` or `s: f32[]`.
    fn tensor_decl(&mut self) -> PResult<TensorDecl> {
        let name = self.ident("for a tensor")?;
        if self.eat(Tok::Colon).is_none() {
            let diag = self
                .error_expected(&format!("`:` and a type after `{}`", name.name))
                .with_help(format!("declare a tensor as `{}: f32[N, M]`", name.name));
            self.report(diag);
            return Err(Failed);
        }
        let dtype_tok = self.peek();
        let dtype_name = self.ident("for an element type")?;
        let Some(dtype) = DType::from_name(&dtype_name.name) else {
            let all: Vec<String> = DType::ALL
                .iter()
                .map(|d| format!("`{}`", d.name()))
                .collect();
            self.report(
                Diagnostic::error(
                    dtype_tok.span,
                    format!("unknown element type `{}`", dtype_name.name),
                )
                .with_label("not an element type")
                .with_help(
                    match closest(&dtype_name.name, DType::ALL.iter().map(|d| d.name())) {
                        Some(d) => format!("did you mean `{d}`?"),
                        None => format!("the element types are {}", all.join(", ")),
                    },
                ),
            );
            return Err(Failed);
        };
        let mut end = dtype_name.span;
        let mut shape = Vec::new();
        if self.eat(Tok::LBracket).is_some() {
            let (dims, close) =
                self.delimited(Tok::RBracket, "in the shape", |p| p.extent("in the shape"))?;
            shape = dims;
            end = close.span;
        }
        Ok(TensorDecl {
            span: name.span.to(end),
            name,
            dtype: (dtype, dtype_name.span),
            shape,
        })
    }

    /// An extent: a dim name or an integer (`context` says where, for the error).
    fn extent(&mut self, context: &str) -> PResult<ShapeDim> {
        if self.at(Tok::Number) {
            let (n, span) = self.integer("an extent")?;
            return Ok(ShapeDim::Fixed(n, span));
        }
        if !self.at(Tok::Ident) {
            let diag = self.error_expected(&format!("a dim name or an integer extent {context}"));
            self.report(diag);
            return Err(Failed);
        }
        Ok(ShapeDim::Named(self.ident("")?))
    }

    /// `grad(OF, wrt: [A, B])` (or `jacobian(...)`, `hessian(...)`), after `kernel NAME =`.
    fn grad(&mut self, start: Span, name: Ident) -> PResult<GradKernel> {
        let help = "a derived kernel is written `kernel NAME = grad(KERNEL, wrt: [INPUTS])`, \
                    or with `jacobian` or `hessian` in place of `grad`";
        let word = self.slice(self.peek().span);
        let kind = Derivative::ALL
            .into_iter()
            .find(|d| self.at(Tok::Ident) && d.keyword() == word);
        let Some(kind) = kind else {
            let diag = self.error_expected("`grad(...)`").with_help(help);
            self.report(diag);
            return Err(Failed);
        };
        self.bump();
        self.expect(Tok::LParen, &format!("after `{}`", kind.keyword()))?;
        let of = self.ident("of the kernel to differentiate")?;
        self.expect(Tok::Comma, "after the kernel's name")?;
        let is_wrt = self.at(Tok::Ident) && self.slice(self.peek().span) == "wrt";
        if !is_wrt {
            let diag = self.error_expected("`wrt:`").with_help(help);
            self.report(diag);
            return Err(Failed);
        }
        self.bump();
        self.expect(Tok::Colon, "after `wrt`")?;
        self.expect(Tok::LBracket, "to start the list of inputs")?;
        let (wrt, _) = self.delimited(Tok::RBracket, "in the `wrt` list", |p| {
            p.ident("of an input")
        })?;
        let close = self.expect(Tok::RParen, &format!("to close `{}(`", kind.keyword()))?;
        Ok(GradKernel {
            name,
            kind,
            of,
            wrt,
            span: start.to(close.span),
        })
    }

    /// `{ stmts }`; returns the statements and the span of the closing brace (or of where it
    /// should have been).
    fn body(&mut self, name: &Ident) -> PResult<(Vec<Stmt>, Span)> {
        let Some(open) = self.eat(Tok::LBrace) else {
            let diag = self.error_expected(&format!("`{{` to start the body of `{}`", name.name));
            self.report(diag);
            return Err(Failed);
        };
        let mut body = Vec::new();
        loop {
            let tok = self.peek();
            match tok.kind {
                Tok::RBrace => {
                    self.bump();
                    return Ok((body, tok.span));
                }
                Tok::Semi => {
                    self.bump();
                }
                Tok::Eof | Tok::Kernel | Tok::Dims => {
                    let diag = self
                        .error_expected(&format!("`}}` to close the body of `{}`", name.name))
                        .with_secondary(open.span, "the body starts here");
                    self.report(diag);
                    // The statements are fine; keep the kernel so later stages still see it.
                    let end = body.last().map_or(open.span, |s: &Stmt| s.span);
                    return Ok((body, end));
                }
                _ => {
                    let target = (tok.kind == Tok::Ident).then(|| Ident {
                        name: self.slice(tok.span).to_string(),
                        span: tok.span,
                    });
                    match self.stmt() {
                        Ok(stmt) => body.push(stmt),
                        Err(Failed) => {
                            self.skip_to_stmt();
                            // Keep the target, so that its uses are not reported again.
                            if let Some(target) = target {
                                body.push(Stmt {
                                    span: target.span.to(self.previous_span()),
                                    value: Expr {
                                        kind: ExprKind::Error,
                                        span: target.span.to(self.previous_span()),
                                    },
                                    target,
                                    indices: Vec::new(),
                                    bracketed: false,
                                    schedule: None,
                                    extents: Vec::new(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }

    // ----- statements ---------------------------------------------------------------------

    /// True if the tokens at `pos` begin a statement: `NAME =` or `NAME[indices] =`.
    fn stmt_starts_at(&self, pos: usize) -> bool {
        let kind = |i: usize| self.tokens.get(i).map_or(Tok::Eof, |t| t.kind);
        if kind(pos) != Tok::Ident {
            return false;
        }
        // `NAME[i][j] =` is a statement too (its bracket error is reported by `stmt`), and so
        // is `NAME[i: N] =`.
        let mut i = pos + 1;
        while kind(i) == Tok::LBracket {
            i += 1;
            while matches!(kind(i), Tok::Ident | Tok::Number | Tok::Comma | Tok::Colon) {
                i += 1;
            }
            if kind(i) != Tok::RBracket {
                return false;
            }
            i += 1;
        }
        kind(i) == Tok::Assign
    }

    /// After a bad statement: skips up to a `;`, the closing brace, the next statement or the
    /// next item. (Progress is certain: the body loop consumes or stops at those tokens itself,
    /// and a statement consumes its first name before it can fail.)
    fn skip_to_stmt(&mut self) {
        loop {
            match self.peek().kind {
                Tok::Semi | Tok::RBrace | Tok::Eof | Tok::Kernel | Tok::Dims => return,
                _ if self.stmt_starts_at(self.pos) => return,
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// `NAME[i, j] = expr`, `NAME = expr` or `NAME[] = expr`.
    fn stmt(&mut self) -> PResult<Stmt> {
        if !self.at(Tok::Ident) {
            let diag = self
                .error_expected("a statement")
                .with_help("a statement assigns a tensor: `NAME[i, j] = expression`");
            self.report(diag);
            return Err(Failed);
        }
        let target = self.ident("")?;
        self.extents.clear();
        let mut indices = Vec::new();
        let bracketed = self.eat(Tok::LBracket).is_some();
        if bracketed {
            let (first, close) = self.delimited(Tok::RBracket, "in the indices", |p| p.index())?;
            indices = self.more_brackets(&target, first, close)?.0;
        }
        self.expect(
            Tok::Assign,
            &format!("after `{}`", self.lhs_text(&target, bracketed)),
        )?;
        let value = self.expr()?;
        let schedule = if self.at_schedule() {
            Some(self.schedule_annotation()?)
        } else {
            None
        };
        self.end_of_stmt()?;
        Ok(Stmt {
            span: target.span.to(value.span),
            target,
            indices,
            bracketed,
            value,
            schedule,
            extents: std::mem::take(&mut self.extents),
        })
    }

    /// True at `schedule NAME`: the word `schedule` followed by a name starts an annotation
    /// (no statement starts that way; elsewhere `schedule` is an ordinary name).
    fn at_schedule(&self) -> bool {
        self.at(Tok::Ident)
            && self.slice(self.peek().span) == "schedule"
            && self.peek_at(1).kind == Tok::Ident
    }

    /// `schedule KIND(key = value, ...)`: a value is an integer, a name or `[name[: int], ...]`.
    fn schedule_annotation(&mut self) -> PResult<ScheduleAnnotation> {
        let start = self.bump().span;
        let kind = self.ident("of a schedule kind")?;
        self.expect(Tok::LParen, "after the schedule kind")?;
        let (items, close) = self.delimited(Tok::RParen, "in the schedule", |p| {
            let key = p.ident("of a schedule key")?;
            p.expect(Tok::Assign, "after the key")?;
            let start = p.peek().span;
            let value = match p.peek().kind {
                Tok::Number => RawValue::Int(p.integer("a schedule value")?.0),
                Tok::LBracket => {
                    p.bump();
                    let (entries, _) = p.delimited(Tok::RBracket, "in the list", |p| {
                        let name = p.ident("in the list")?;
                        let factor = match p.eat(Tok::Colon) {
                            Some(_) => Some(p.integer("a factor")?.0),
                            None => None,
                        };
                        Ok((name.name, factor, name.span))
                    })?;
                    RawValue::List(entries)
                }
                _ => RawValue::Name(p.ident("as the value, or a number or a list `[...]`")?.name),
            };
            let end = p
                .tokens
                .get(p.pos.saturating_sub(1))
                .map_or(start, |t| t.span);
            Ok(RawItem {
                key: key.name,
                key_at: key.span,
                value,
                value_at: start.to(end),
            })
        })?;
        Ok(ScheduleAnnotation {
            kind,
            items,
            span: start.to(close.span),
        })
    }

    fn lhs_text(&self, target: &Ident, bracketed: bool) -> String {
        if bracketed {
            format!("{}[...]", target.name)
        } else {
            target.name.clone()
        }
    }

    /// Checks that the statement just parsed is followed by something that may follow it.
    fn end_of_stmt(&mut self) -> PResult<()> {
        match self.peek().kind {
            Tok::Semi | Tok::RBrace | Tok::Eof | Tok::Kernel | Tok::Dims => Ok(()),
            _ if self.stmt_starts_at(self.pos) => Ok(()),
            found => {
                let mut diag = self.error_expected("an operator or the end of the statement");
                if matches!(found, Tok::Ident | Tok::Number | Tok::Inf | Tok::LParen) {
                    diag = diag.with_help("is an operator such as `*` or `+` missing here?");
                } else if found == Tok::Assign {
                    diag = diag.with_help(
                        "each statement assigns one tensor; to compare values, write `==`",
                    );
                }
                self.report(diag);
                Err(Failed)
            }
        }
    }

    /// One index: a name or an integer position.
    fn index(&mut self) -> PResult<IndexExpr> {
        match self.peek().kind {
            Tok::Ident => {
                let name = self.ident("")?;
                if self.eat(Tok::Colon).is_some() {
                    let extent = self.extent("as the extent of the index")?;
                    self.extents.push(IndexExtent {
                        index: name.clone(),
                        extent,
                    });
                }
                Ok(IndexExpr::Var(name))
            }
            Tok::Number => {
                let (n, span) = self.integer("an index position")?;
                Ok(IndexExpr::Fixed(n, span))
            }
            _ => {
                let diag = self
                    .error_expected("an index name or an integer position")
                    .with_note("indices are names (`A[i, j]`) or fixed positions (`A[0, j]`)");
                self.report(diag);
                Err(Failed)
            }
        }
    }

    /// After `NAME[...]`: further bracket groups (`A[i][j]`, as C or numpy write it) are
    /// reported once, with the one-bracket form as help, and their indices appended, so that
    /// the rest of the statement is still checked. Returns every index and the last `]`.
    fn more_brackets(
        &mut self,
        name: &Ident,
        mut indices: Vec<IndexExpr>,
        mut close: Token,
    ) -> PResult<(Vec<IndexExpr>, Token)> {
        let first_extra = self.peek().span;
        let mut extra = false;
        while self.eat(Tok::LBracket).is_some() {
            let (more, c) = self.delimited(Tok::RBracket, "in the indices", |p| p.index())?;
            indices.extend(more);
            close = c;
            extra = true;
        }
        if extra {
            self.brackets_error(name, &indices, first_extra.to(close.span));
        }
        Ok((indices, close))
    }

    #[cold]
    #[inline(never)]
    fn brackets_error(&mut self, name: &Ident, indices: &[IndexExpr], span: Span) {
        let shown: Vec<&str> = indices.iter().map(|i| self.slice(i.span())).collect();
        self.report(
            Diagnostic::error(span, "indices are written in one pair of brackets")
                .with_label("a second pair of brackets")
                .with_help(format!(
                    "separate the indices with commas: `{}[{}]`",
                    name.name,
                    shown.join(", ")
                )),
        );
    }

    // ----- expressions --------------------------------------------------------------------

    fn expr(&mut self) -> PResult<Expr> {
        self.binary(1)
    }

    /// Precedence climbing over the binary operators binding at least as tightly as
    /// `min_prec`. All are left-associative except comparisons, which do not chain.
    fn binary(&mut self, min_prec: u8) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        let mut chained_comparison = false;
        while let Some(op) = binary_op(self.peek().kind) {
            let prec = precedence(op);
            if prec < min_prec {
                break;
            }
            let op_span = self.bump().span;
            if is_comparison(op) && chained_comparison {
                self.chained_comparison(op_span, lhs.span);
            }
            chained_comparison = is_comparison(op);
            let rhs = self.binary(prec + 1)?;
            lhs = join(op, lhs, rhs);
        }
        Ok(lhs)
    }

    #[cold]
    #[inline(never)]
    fn chained_comparison(&mut self, op: Span, lhs: Span) {
        self.report(
            Diagnostic::error(op, "comparisons cannot be chained")
                .with_label("second comparison")
                .with_secondary(lhs, "this is already a comparison")
                .with_help("combine them with `&&`: `a < b && b < c`"),
        );
    }

    /// Prefix operators and primaries. Every nested expression passes through here, so this
    /// is where the nesting depth is counted.
    fn unary(&mut self) -> PResult<Expr> {
        if self.depth >= MAX_NESTING {
            return self.too_deep();
        }
        self.depth += 1;
        let result = match self.peek().kind {
            Tok::Minus => self.prefix(UnOp::Neg),
            Tok::Bang => self.prefix(UnOp::Not),
            _ => self.primary(),
        };
        self.depth -= 1;
        result
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&mut self) -> PResult<Expr> {
        let tok = self.peek();
        self.report(
            Diagnostic::error(tok.span, "expression nested too deeply")
                .with_label(format!("more than {MAX_NESTING} levels deep here"))
                .with_help("split the expression into several statements"),
        );
        Err(Failed)
    }

    fn prefix(&mut self, op: UnOp) -> PResult<Expr> {
        let op_span = self.bump().span;
        let operand = self.unary()?;
        Ok(Expr {
            span: op_span.to(operand.span),
            kind: ExprKind::Unary(op, Box::new(operand)),
        })
    }

    fn primary(&mut self) -> PResult<Expr> {
        let tok = self.peek();
        let kind = match tok.kind {
            Tok::Number => ExprKind::Number(self.slice(tok.span).to_string()),
            Tok::Inf => ExprKind::Inf,
            Tok::LParen => return self.parenthesised(),
            Tok::Ident => return self.named(),
            _ => return self.not_an_expression(tok),
        };
        self.bump();
        Ok(Expr {
            kind,
            span: tok.span,
        })
    }

    fn parenthesised(&mut self) -> PResult<Expr> {
        let open = self.bump().span;
        let inner = self.expr()?;
        if self.eat(Tok::RParen).is_none() {
            return self.missing(open, "`)` to close `(`");
        }
        Ok(inner)
    }

    /// Reports a missing `)` for the `(` at `open`.
    #[cold]
    #[inline(never)]
    fn missing(&mut self, open: Span, expected: &str) -> PResult<Expr> {
        let mut diag = self.unclosed(open, Tok::RParen, expected);
        if self.at(Tok::Assign) {
            diag = diag.with_help("to compare two values, write `==`");
        }
        self.report(diag);
        Err(Failed)
    }

    #[cold]
    #[inline(never)]
    fn not_an_expression(&mut self, tok: Token) -> PResult<Expr> {
        let diag = if tok.kind == Tok::Str {
            Diagnostic::error(tok.span, "a string literal cannot be used as a value")
                .with_label("unexpected string")
                .with_help("strings only appear as subscripts: `einsum(\"ij,jk->ik\", A, B)`")
        } else {
            self.error_expected("an expression")
        };
        self.report(diag);
        Err(Failed)
    }

    /// Everything starting with a name: `x`, `A[i, j]`, `sum[j](e)`, `f(a, b)`, `einsum(...)`.
    fn named(&mut self) -> PResult<Expr> {
        let name = self.ident("")?;
        if self.at(Tok::LParen) {
            if name.name == "einsum" {
                return self.einsum(name);
            }
            return self.call(name);
        }
        if !self.at(Tok::LBracket) {
            return Ok(Expr {
                span: name.span,
                kind: ExprKind::Name(name),
            });
        }
        self.bump();
        let (first, close) = self.delimited(Tok::RBracket, "in the indices", |p| p.index())?;
        let (indices, close) = self.more_brackets(&name, first, close)?;
        if self.at(Tok::LParen) {
            return self.reduce(name, indices);
        }
        Ok(Expr {
            span: name.span.to(close.span),
            kind: ExprKind::Access {
                tensor: name,
                indices,
            },
        })
    }

    /// `f(a, b)`, after the name.
    fn call(&mut self, func: Ident) -> PResult<Expr> {
        self.bump();
        let (args, close) = self.delimited(Tok::RParen, "in the arguments", |p| p.expr())?;
        Ok(Expr {
            span: func.span.to(close.span),
            kind: ExprKind::Call { func, args },
        })
    }

    /// `op[i, j](body)`, after the indices: a reduction, whose indices must be names.
    fn reduce(&mut self, op: Ident, indices: Vec<IndexExpr>) -> PResult<Expr> {
        let mut vars = Vec::with_capacity(indices.len());
        for index in indices {
            match index {
                IndexExpr::Var(id) => vars.push(id),
                IndexExpr::Fixed(_, span) => return self.position_in_reduction(&op, span),
            }
        }
        let open = self.bump().span;
        let body = self.expr()?;
        let Some(close) = self.eat(Tok::RParen) else {
            return self.missing(open, "`)` to close the reduction's `(`");
        };
        Ok(Expr {
            span: op.span.to(close.span),
            kind: ExprKind::Reduce {
                op,
                indices: vars,
                body: Box::new(body),
            },
        })
    }

    #[cold]
    #[inline(never)]
    fn position_in_reduction(&mut self, op: &Ident, span: Span) -> PResult<Expr> {
        self.report(
            Diagnostic::error(
                span,
                format!(
                    "`{}[...]` works along index names, not fixed positions",
                    op.name
                ),
            )
            .with_label("expected an index name"),
        );
        Err(Failed)
    }

    /// `einsum("subscripts", A, B)`, after the name. Its operands are plain names, so it
    /// does not recurse.
    fn einsum(&mut self, name: Ident) -> PResult<Expr> {
        self.bump();
        let sub_tok = self.peek();
        if sub_tok.kind != Tok::Str {
            let diag = self
                .error_expected("a subscripts string as `einsum`'s first argument")
                .with_help("write `einsum(\"ij,jk->ik\", A, B)`");
            self.report(diag);
            return Err(Failed);
        }
        self.bump();
        let quoted = self.slice(sub_tok.span);
        let inner = quoted.strip_prefix('"').unwrap_or(quoted);
        let inner = inner.strip_suffix('"').unwrap_or(inner);
        let mut args = Vec::new();
        let close = loop {
            if let Some(close) = self.eat(Tok::RParen) {
                break close;
            }
            if self.eat(Tok::Comma).is_none() {
                let diag = self.error_expected("`,` or `)` in `einsum(...)`");
                self.report(diag);
                return Err(Failed);
            }
            if let Some(close) = self.eat(Tok::RParen) {
                break close;
            }
            if !self.at(Tok::Ident) || self.peek_at(1).kind == Tok::LBracket {
                let diag = self
                    .error_expected("a tensor name as an `einsum` operand")
                    .with_help(
                        "`einsum` operands are whole tensors: `einsum(\"ij,jk->ik\", A, B)`",
                    );
                self.report(diag);
                return Err(Failed);
            }
            args.push(self.ident("")?);
        };
        Ok(Expr {
            span: name.span.to(close.span),
            kind: ExprKind::Einsum {
                subscripts: (inner.to_string(), sub_tok.span),
                args,
            },
        })
    }
}
