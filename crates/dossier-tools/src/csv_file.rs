//! Reading an import file into records that know where they start. The `csv`
//! crate parses (RFC 4180: fields separated by commas, records by CRLF, LF or CR,
//! fields optionally in double quotes, which may then hold commas, line
//! breaks and `""` for a quote); a UTF-8 byte-order mark is dropped and blank
//! lines are skipped.
//!
//! The crate is lenient where a file is broken: an unterminated quoted field
//! takes the rest of the file, and text after a closing quote is appended to
//! the field. Either would import wrong data without a word, and the rows
//! after such a quote cannot be told apart, so [`check_quotes`] refuses the
//! whole file, naming the line, before the crate reads it. Like the crate, it
//! treats a quote as special only at the start of a field: a lone quote inside
//! an unquoted field (`12" pipe`) is a character, as spreadsheets write it.

/// One record, with where it starts in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based position among the records, as a spreadsheet numbers rows
    /// (the header is record 1).
    pub row: usize,
    /// 1-based line of the file the record starts on.
    pub line: usize,
    pub fields: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct CsvError {
    pub line: usize,
    pub reason: String,
}

/// Parses a whole file's text into records.
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_quotes(text)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // Rows may have fewer or more cells than the header; the import
        // says which cell is wrong.
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut lines = Lines::new(text);
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| CsvError {
            line: e.position().map_or(1, |p| lines.line_at(p.byte() as usize)),
            reason: e.to_string(),
        })?;
        // The reader's position is where it began looking for the record,
        // before the blank lines it skipped.
        let start = record.position().map_or(0, |p| p.byte() as usize);
        let start = start
            + text.as_bytes()[start..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        records.push(Record {
            row: records.len() + 1,
            line: lines.line_at(start),
            fields: record.iter().map(str::to_owned).collect(),
        });
    }
    Ok(records)
}

/// True at the last character of a line break: LF, the LF of CRLF, or a
/// lone CR (records end at all three; the `csv` crate's own line count sees
/// only LF).
fn breaks_line(c: char, next: Option<char>) -> bool {
    c == '\n' || (c == '\r' && next != Some('\n'))
}

/// Line numbers of byte offsets, asked for in increasing order.
struct Lines<'a> {
    text: &'a [u8],
    counted_to: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        Lines {
            text: text.as_bytes(),
            counted_to: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: usize) -> usize {
        let byte = byte.min(self.text.len());
        for i in self.counted_to..byte {
            // Bytes of multi-byte characters are never CR or LF.
            let next = self.text.get(i + 1).copied().map(char::from);
            if breaks_line(char::from(self.text[i]), next) {
                self.line += 1;
            }
        }
        self.counted_to = self.counted_to.max(byte);
        self.line
    }
}

/// Refuses the two quoting errors the `csv` crate reads past (see the
/// module comment): a quoted field still open at the end of the file (the
/// error names the line its record starts on) and text after a closing quote.
fn check_quotes(text: &str) -> Result<(), CsvError> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum At {
        FieldStart,
        Unquoted,
        Quoted,
        /// A quote inside a quoted field: it closes the field, or starts `""`.
        QuoteInQuoted,
    }
    let mut at = At::FieldStart;
    let mut line = 1;
    let mut record_line = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let ends_record = matches!(c, '\r' | '\n') && at != At::Quoted;
        if !ends_record && record_line.is_none() {
            record_line = Some(line);
        }
        at = match (at, c) {
            (At::Quoted, '"') => At::QuoteInQuoted,
            (At::Quoted, _) => At::Quoted,
            (At::QuoteInQuoted, '"') => At::Quoted,
            (At::FieldStart, '"') => At::Quoted,
            (_, ',' | '\r' | '\n') => At::FieldStart,
            (At::QuoteInQuoted, c) => {
                return Err(CsvError {
                    line,
                    reason: format!(
                        "unexpected {c:?} after a closing quote (write a quote inside a quoted field as \"\")"
                    ),
                })
            }
            _ => At::Unquoted,
        };
        if ends_record {
            record_line = None;
        }
        if breaks_line(c, chars.peek().copied()) {
            line += 1;
        }
    }
    if at == At::Quoted {
        return Err(CsvError {
            line: record_line.unwrap_or(line),
            reason: "a quoted field is not closed before the end of the file".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn plain_records_with_lf_crlf_and_no_final_newline() {
        assert_eq!(
            fields("a,b,c\n1,2,3\r\n4,,6"),
            vec![vec!["a", "b", "c"], vec!["1", "2", "3"], vec!["4", "", "6"]]
        );
        assert_eq!(fields("a,\n"), vec![vec!["a", ""]]);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn bom_is_dropped() {
        let r = parse("\u{feff}kind,name\r\nperson,张伟\r\n").unwrap();
        assert_eq!(r[0].fields, vec!["kind", "name"]);
        assert_eq!(r[1].fields, vec!["person", "张伟"]);
    }

    #[test]
    fn quotes_commas_and_embedded_newlines() {
        let text = "id,note\r\n1,\"Calle de Alcalá 45, Madrid\"\r\n2,\"say \"\"hi\"\"\"\r\n3,\"two\r\nlines\nhere\"\r\n4,\"\"\r\n";
        let r = parse(text).unwrap();
        assert_eq!(r[1].fields, vec!["1", "Calle de Alcalá 45, Madrid"]);
        assert_eq!(r[2].fields, vec!["2", "say \"hi\""]);
        assert_eq!(r[3].fields, vec!["3", "two\r\nlines\nhere"]);
        assert_eq!(r[4].fields, vec!["4", ""]);
        // Rows count records; lines count the file's lines.
        assert_eq!((r[3].row, r[3].line), (4, 4));
        assert_eq!((r[4].row, r[4].line), (5, 7));
    }

    #[test]
    fn blank_lines_are_skipped_and_lone_quotes_kept() {
        let r = parse("a\n\n\r\nb 12\" pipe\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].fields, vec!["b 12\" pipe"]);
        assert_eq!((r[1].row, r[1].line), (2, 4));
    }

    #[test]
    fn a_lone_cr_ends_a_line_too() {
        let r = parse("a,b\r1,2\r\r3,\"x\r\ny\"\r4,5").unwrap();
        let rows: Vec<(usize, usize)> = r.iter().map(|r| (r.row, r.line)).collect();
        assert_eq!(rows, [(1, 1), (2, 2), (3, 4), (4, 6)]);
        let e = parse("a\r\"x\"y").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn malformed_quotes_are_errors_with_lines() {
        let e = parse("a\n\"open,\nstill open").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("not closed"), "{e}");
        let e = parse("a\n\nb,\"open\n\"\"\nstill open").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("not closed"), "{e}");
        let e = parse("a,b\n\"x\"y,2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("after a closing quote"), "{e}");
        let e = parse("a,b\n\"multi\nline\" ,2\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.reason.contains("after a closing quote"), "{e}");
    }
}
