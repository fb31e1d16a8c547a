//! Writes tensor IR as text (the format in `docs/ir.md`).
