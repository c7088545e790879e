//! Errors that point into a file: `FILE:LINE:COL: message`, the form every editor and CI log
//! viewer can jump to.

use std::fmt;
use std::ops::Range;

/// One error at a place in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every error found in one file (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl Diagnostics {
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Turns byte offsets of one file into line and column numbers.
#[derive(Debug, Clone)]
pub struct SourceMap<'a> {
    file: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Self {
            file,
            text,
            line_starts,
        }
    }

    pub fn file(&self) -> &str {
        self.file
    }

    /// The whole text the places are in.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// 1-based line and character column of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count())
            + 1;
        // A byte-order mark is not a column an editor shows.
        let bom = line == 1 && offset > 0 && self.text.starts_with('\u{feff}');
        (line, column - usize::from(bom))
    }

    pub fn diagnostic(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let text = "a = 1\nbé = 2\n\nc";
        let map = SourceMap::new("t.toml", text);
        assert_eq!(map.position(0), (1, 1));
        assert_eq!(map.position(4), (1, 5));
        assert_eq!(map.position(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(map.position(text.find(" = 2").unwrap()), (2, 3));
        assert_eq!(map.position(text.len()), (4, 2));
        assert_eq!(map.position(10_000), (4, 2));
    }

    #[test]
    fn a_byte_order_mark_takes_no_column() {
        let text = "\u{feff}version = 2\nx";
        let map = SourceMap::new("t.toml", text);
        assert_eq!(map.position(text.find("2").unwrap()), (1, 11));
        assert_eq!(map.position(text.find("x").unwrap()), (2, 1));
        assert_eq!(map.position(0), (1, 1));
    }

    #[test]
    fn display_is_file_line_column_message() {
        let map = SourceMap::new("fleet.toml", "x\ny");
        let d = map.diagnostic(2..3, "bad thing");
        assert_eq!(d.to_string(), "fleet.toml:2:1: bad thing");
        let all = Diagnostics(vec![d.clone(), d]);
        assert_eq!(
            all.to_string(),
            "fleet.toml:2:1: bad thing\nfleet.toml:2:1: bad thing"
        );
    }
}
