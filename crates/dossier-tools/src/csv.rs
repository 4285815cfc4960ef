//! A small RFC 4180 reader: UTF-8 with an optional byte-order mark, fields
//! separated by commas, records by CRLF or LF, fields optionally in double
//! quotes (which may then hold commas, line breaks and `""` for a quote).
//!
//! Deliberately lenient where spreadsheets are sloppy (a lone quote inside an
//! unquoted field is kept as a character, blank lines are skipped) and strict
//! where data could be lost silently (an unterminated quoted field, or text
//! after a closing quote, is an error naming the line).

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

/// Parses a whole file's text into records (blank lines skipped).
pub fn parse(text: &str) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        // Skip blank lines between records.
        while let Some(&c) = chars.peek() {
            if c == '\n' || c == '\r' {
                chars.next();
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                line += 1;
            } else {
                break;
            }
        }
        if chars.peek().is_none() {
            return Ok(records);
        }
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        loop {
            // At the start of a field.
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(CsvError {
                                line: start,
                                reason: "a quoted field is not closed before the end of the file"
                                    .into(),
                            })
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',' | '\n' | '\r') => {}
                    Some(c) => {
                        return Err(CsvError {
                            line,
                            reason: format!(
                                "unexpected {c:?} after a closing quote (write a quote inside a quoted field as \"\")"
                            ),
                        })
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if matches!(c, ',' | '\n' | '\r') {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
            }
            fields.push(std::mem::take(&mut field));
            match chars.next() {
                Some(',') => continue,
                Some('\r') => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    line += 1;
                }
                Some('\n') => line += 1,
                _ => {}
            }
            break;
        }
        records.push(Record {
            row: records.len() + 1,
            line: start,
            fields,
        });
    }
}

/// Writes one record, quoting the fields that need it.
pub fn write_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let f = f.as_ref();
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
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
    fn malformed_quotes_are_errors_with_lines() {
        let e = parse("a\n\"open,\nstill open").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("not closed"), "{e}");
        let e = parse("a,b\n\"x\"y,2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("after a closing quote"), "{e}");
    }

    #[test]
    fn written_records_parse_back() {
        let rows = [
            vec!["row", "reason"],
            vec!["7", "phone: \"abc\" is not, a phone\nnumber"],
        ];
        let mut out = String::new();
        for r in &rows {
            write_record(&mut out, r);
        }
        assert_eq!(fields(&out), rows);
    }
}
