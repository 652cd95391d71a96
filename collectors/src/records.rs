//! Records facts: facts too large to be one value, written as a stream and judged as one.
//!
//! A facts object is either one JSON value (every collector's, and every run's before records
//! facts existed), or JSON lines:
//!
//! ```text
//! {"annexa_records":1,"field":"documents","summary":{"review_grace_days":0}}
//! {"id":"DOC-1",…}
//! {"id":"DOC-2",…}
//! ```
//!
//! The first line is the summary and names the field the records belong to; each next line is
//! one record, with its keys sorted. As one value ([`to_value`], for reports and old readers)
//! they are the summary with the records as an array under that field, so the same facts read
//! either way mean the same thing. One JSON value holds no line break (strings escape them), so
//! the first line tells the two forms apart.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Facts;

/// The version of the records form, the value of `annexa_records` in the first line.
const FORM: u64 = 1;

/// Writes records facts into a file, one record at a time.
pub struct RecordsWriter {
    path: PathBuf,
    out: BufWriter<std::fs::File>,
}

impl RecordsWriter {
    /// Starts a records facts file at `path`: its summary, and the field its records fill.
    pub fn create(path: &Path, field: &str, summary: &impl Serialize) -> std::io::Result<Self> {
        let mut out = BufWriter::new(std::fs::File::create_new(path)?);
        let head = serde_json::json!({
            "annexa_records": FORM,
            "field": field,
            "summary": to_sorted(summary),
        });
        serde_json::to_writer(&mut out, &head)?;
        out.write_all(b"\n")?;
        Ok(RecordsWriter {
            path: path.to_path_buf(),
            out,
        })
    }

    /// Appends one record.
    pub fn push(&mut self, record: &impl Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &to_sorted(record))?;
        self.out.write_all(b"\n")
    }

    /// The written facts, for the engine to store.
    pub fn finish(mut self) -> std::io::Result<Facts> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(Facts::File(self.path))
    }
}

/// A value with its object keys sorted (serde_json's map is ordered by key), so the same
/// record always gives the same bytes.
fn to_sorted(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("facts serialize to JSON")
}

/// Stored facts as read from a stream: one whole value, or the summary of records facts with
/// the records still to read.
pub enum Opened<R> {
    Whole(Value),
    Records {
        field: String,
        summary: Value,
        rest: R,
    },
}

/// Opens stored facts: reads the first line and says which form they are in.
pub fn open<R: Read>(reader: R) -> Result<Opened<BufReader<R>>, String> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .map_err(|e| e.to_string())?;
    let head: Value = serde_json::from_slice(&first).map_err(|e| e.to_string())?;
    match head.get("annexa_records").and_then(Value::as_u64) {
        None => {
            // One value: nothing may follow it.
            let mut rest = [0u8; 1];
            if reader.read(&mut rest).map_err(|e| e.to_string())? != 0 {
                return Err("facts hold more than one JSON value".into());
            }
            Ok(Opened::Whole(head))
        }
        Some(FORM) => {
            let field = head
                .get("field")
                .and_then(Value::as_str)
                .ok_or("records facts name no field")?
                .to_string();
            let summary = head.get("summary").cloned().unwrap_or(Value::Null);
            Ok(Opened::Records {
                field,
                summary,
                rest: reader,
            })
        }
        Some(other) => Err(format!(
            "records facts of form {other}, newer than this version reads ({FORM})"
        )),
    }
}

/// The records after the summary, each read as `T`, one line at a time.
pub fn each<T: DeserializeOwned>(
    mut rest: impl BufRead,
    mut add: impl FnMut(T),
) -> Result<(), String> {
    let mut line = Vec::new();
    let mut n = 0usize;
    loop {
        line.clear();
        if rest
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            return Ok(());
        }
        n += 1;
        // One UTF-8 check of the line, not one of each string in it.
        let text = std::str::from_utf8(&line).map_err(|e| format!("record {n}: {e}"))?;
        let record = serde_json::from_str(text).map_err(|e| format!("record {n}: {e}"))?;
        add(record);
    }
}

/// Stored facts as one value, whichever form they are in.
pub fn read_whole(reader: &mut dyn Read) -> Result<Value, String> {
    match open(reader)? {
        Opened::Whole(v) => Ok(v),
        Opened::Records {
            field,
            summary,
            rest,
        } => {
            let mut records = Vec::new();
            each::<Value>(rest, |r| records.push(r))?;
            let mut whole = match summary {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            whole.insert(field, Value::Array(records));
            Ok(Value::Object(whole))
        }
    }
}

/// [`read_whole`] of bytes in memory.
pub fn to_value(bytes: &[u8]) -> Result<Value, String> {
    read_whole(&mut &bytes[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_the_value_they_stand_for_and_one_value_reads_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("facts.jsonl");
        let mut w = RecordsWriter::create(&path, "documents", &serde_json::json!({"b": 1, "a": 2}))
            .unwrap();
        w.push(&serde_json::json!({"id": "x\ny", "z": 1, "a": 0}))
            .unwrap();
        w.push(&serde_json::json!({"id": "two"})).unwrap();
        let Facts::File(p) = w.finish().unwrap() else {
            panic!("a file")
        };
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            "{\"annexa_records\":1,\"field\":\"documents\",\"summary\":{\"a\":2,\"b\":1}}\n\
             {\"a\":0,\"id\":\"x\\ny\",\"z\":1}\n{\"id\":\"two\"}\n"
        );
        assert_eq!(
            to_value(&bytes).unwrap(),
            serde_json::json!({"a": 2, "b": 1, "documents": [{"id": "x\ny", "z": 1, "a": 0}, {"id": "two"}]})
        );
        let whole = br#"{"documents":[{"id":"old"}],"review_grace_days":0}"#;
        assert_eq!(to_value(whole).unwrap()["documents"][0]["id"], "old");
        assert!(to_value(b"{\"a\":1}\n{\"b\":2}").is_err());
        let broken = b"{\"annexa_records\":1,\"field\":\"d\"}\n{\"id\":1}\nnot json\n";
        assert_eq!(
            to_value(broken).unwrap_err().split(':').next(),
            Some("record 2")
        );
        assert!(
            to_value(b"{\"annexa_records\":9}\n")
                .unwrap_err()
                .contains("newer")
        );
    }
}
