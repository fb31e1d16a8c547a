//! Diagnostics: every user-facing error, warning and note, with source spans, rendered the same
//! way (rustc's style: `error: ...`, `--> file:line:col`, the source line, carets, `= help:`).
//!
//! Layers produce [`Diagnostic`] values and never print; the driver renders them with
//! [`render`]. Several diagnostics from one file are collected and reported together.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;
use std::ops::Range;

/// A byte range in one source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// Offset of the first byte.
    pub start: u32,
    /// Offset one past the last byte.
    pub end: u32,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: saturating_u32(start),
            end: saturating_u32(end),
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The span as a `usize` range.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The input is rejected.
    Error,
    /// The input is accepted but probably not what was meant.
    Warning,
    /// Information attached to accepted input.
    Note,
}

/// A span with a message shown under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One diagnostic: a headline, a primary label, optional secondary labels, notes and a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error, warning or note.
    pub severity: Severity,
    /// The headline, e.g. "index `k` is free on the right but not on the left".
    pub message: String,
    /// The main location.
    pub primary: Label,
    /// Other related locations (e.g. the other use of a mismatched dim).
    pub secondary: Vec<Label>,
    /// Extra explanations, rendered as `= note: ...`.
    pub notes: Vec<String>,
    /// A suggestion, rendered as `= help: ...`.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `span` with headline `message` and the same text as label.
    pub fn error(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, span, message)
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, span, message)
    }

    /// A note at `span`.
    pub fn note(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Note, span, message)
    }

    fn new(severity: Severity, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Sets the text under the primary span.
    pub fn with_label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary.message = message.into();
        self
    }

    /// Adds a secondary span with its text.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Sets the hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A named source text, as diagnostics refer to it.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The name shown in `--> name:line:col` (usually the path as given).
    pub name: String,
    /// The full text.
    pub text: String,
}

impl SourceFile {
    /// A source file from a name and text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset, clamped to the text.
    pub fn line_col(&self, offset: u32) -> (usize, usize) {
        let mut offset = (offset as usize).min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

/// Renders diagnostics against `file` as text (with ANSI colours when `color` is set).
pub fn render(diags: &[Diagnostic], file: &SourceFile, color: bool) -> String {
    let files = SimpleFile::new(file.name.as_str(), file.text.as_str());
    let config = term::Config::default();
    let mut out = String::new();
    for d in diags {
        let rendered = to_codespan(d, file);
        let result = if color {
            let styles = term::Styles::default();
            let mut buffer = term::termcolor::Buffer::ansi();
            let mut writer = term::StylesWriter::new(&mut buffer, &styles);
            term::emit_to_write_style(&mut writer, &config, &files, &rendered)
                .map(|()| String::from_utf8_lossy(buffer.as_slice()).into_owned())
        } else {
            term::emit_into_string(&config, &files, &rendered)
        };
        match result {
            Ok(s) => out.push_str(&s),
            // A span past the end of the text is a compiler bug; still say what went wrong.
            Err(e) => out.push_str(&format!(
                "{}: {}\n  (could not show the source: {e})\n",
                severity_word(d.severity),
                d.message
            )),
        }
    }
    out
}

/// The candidate closest to `name`, when it is close enough to be what was meant: for "did
/// you mean `sigmoid`?" after `sigmiod`. Distance is the number of single-character insertions,
/// deletions, substitutions and swaps of neighbours (a difference of case only counts half);
/// a candidate is close when it is at most a third of the name's length away (at least 1), and
/// a name shorter than 3 characters is only matched up to case. Ties go to the earlier
/// candidate; `name` itself is never suggested.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = if len < 3 { len } else { (len / 3).max(1) * 2 };
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance_x2(name, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Twice the optimal-string-alignment distance between `a` and `b`, where replacing a letter
/// by itself in the other case costs 1 (half an edit).
fn edit_distance_x2(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = 2 * i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = 2 * j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = if a[i - 1] == b[j - 1] {
                0
            } else if a[i - 1].eq_ignore_ascii_case(&b[j - 1]) {
                1
            } else {
                2
            };
            let mut best = (d[i - 1][j] + 2)
                .min(d[i][j - 1] + 2)
                .min(d[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 2);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn clamp(span: Span, file: &SourceFile) -> Range<usize> {
    let len = file.text.len();
    let mut start = (span.start as usize).min(len);
    let mut end = (span.end as usize).clamp(start, len);
    while !file.text.is_char_boundary(start) {
        start -= 1;
    }
    while !file.text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

fn to_codespan(d: &Diagnostic, file: &SourceFile) -> cs::Diagnostic<()> {
    let sev = match d.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
        Severity::Note => cs::Severity::Note,
    };
    let mut labels =
        vec![cs::Label::primary((), clamp(d.primary.span, file)).with_message(&d.primary.message)];
    labels.extend(
        d.secondary
            .iter()
            .map(|l| cs::Label::secondary((), clamp(l.span, file)).with_message(&l.message)),
    );
    let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
    if let Some(h) = &d.help {
        notes.push(format!("help: {h}"));
    }
    cs::Diagnostic::new(sev)
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_names_file_line_and_column_and_underlines_the_span() {
        let file = SourceFile::new(
            "k.ein",
            "dims N\nkernel f(A: f32[N]) -> (B: f32[N]) {\n    B[i] = A[j]\n}\n",
        );
        let start = file.text.find("A[j]").unwrap();
        let d = Diagnostic::error(
            Span::new(start + 2, start + 3),
            "index `j` is free on the right but not on the left",
        )
        .with_label("`j` appears once")
        .with_help("write sum[j](...) to reduce over j");
        let text = render(&[d], &file, false);
        assert!(text.contains("error: index `j` is free"), "{text}");
        assert!(text.contains("k.ein:3:14"), "{text}");
        assert!(text.contains("B[i] = A[j]"), "{text}");
        assert!(text.contains("^ `j` appears once"), "{text}");
        assert!(text.contains("help: write sum[j](...)"), "{text}");
    }

    #[test]
    fn closest_suggests_near_misses_only() {
        let functions = ["exp", "log", "sigmoid", "sqrt", "rsqrt", "softmax", "sum"];
        assert_eq!(closest("sigmiod", functions), Some("sigmoid"));
        assert_eq!(closest("sofmax", functions), Some("softmax"));
        assert_eq!(closest("smu", functions), Some("sum"));
        assert_eq!(closest("Exp", functions), Some("exp"));
        assert_eq!(closest("sqr", functions), Some("sqrt"));
        assert_eq!(closest("banana", functions), None);
        assert_eq!(closest("exp", functions), None);
        assert_eq!(closest("x", ["y"]), None);
        assert_eq!(closest("x", ["X"]), Some("X"));
        assert_eq!(closest("ab", ["AB", "ba"]), Some("AB"));
        assert_eq!(closest("XQ", ["Xq", "WQ"]), Some("Xq"));
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let file = SourceFile::new("u.ein", "# é\nx");
        assert_eq!(file.line_col(5), (2, 1));
        assert_eq!(file.line_col(4), (1, 4));
        assert_eq!(file.line_col(999), (2, 2));
    }

    #[test]
    fn spans_past_the_end_do_not_panic() {
        let file = SourceFile::new("e.ein", "");
        let text = render(
            &[Diagnostic::error(Span::new(3, 9), "unexpected end of file")],
            &file,
            false,
        );
        assert!(text.contains("unexpected end of file"), "{text}");
    }
}
