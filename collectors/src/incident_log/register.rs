//! The incident register: CSV or JSON, validated all or nothing.
//!
//! Columns (CSV header or JSON keys): `id, title, severity, category, detected_at, triaged_at,
//! contained_at, resolved_at, closed_at, status, owner, postmortem, postmortem_at,
//! personal_data_breach, authority_notified_at, customers_notified_at`. `id`, `title`,
//! `severity`, `detected_at` and `status` are required columns. Times are RFC 3339 with an
//! offset; an empty cell means "not yet". An empty severity means "not classified yet".

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::Policy;

pub const COLUMNS: &[&str] = &[
    "id",
    "title",
    "severity",
    "category",
    "detected_at",
    "triaged_at",
    "contained_at",
    "resolved_at",
    "closed_at",
    "status",
    "owner",
    "postmortem",
    "postmortem_at",
    "personal_data_breach",
    "authority_notified_at",
    "customers_notified_at",
];

const REQUIRED: &[&str] = &["id", "title", "severity", "detected_at", "status"];

/// One incident, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    /// The scheme's name for the severity; None when not classified.
    pub severity: Option<String>,
    pub category: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub triaged_at: Option<DateTime<Utc>>,
    pub contained_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub status: String,
    pub owner: Option<String>,
    pub postmortem: Option<String>,
    pub postmortem_at: Option<DateTime<Utc>>,
    pub personal_data_breach: bool,
    pub authority_notified_at: Option<DateTime<Utc>>,
    pub customers_notified_at: Option<DateTime<Utc>>,
    /// Where it came from: `register.csv line 7`, `github #12`.
    pub origin: String,
}

/// A problem with one cell or record; the import stops at the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    /// `line 7`, or `record 3` for JSON.
    pub location: String,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{}, column `{c}`: {}", self.location, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// One record as text cells, with where it stands in the file.
#[derive(Debug)]
pub struct RawRecord {
    pub location: String,
    pub cells: Vec<(String, String)>,
}

impl RawRecord {
    fn get(&self, column: &str) -> &str {
        self.cells
            .iter()
            .find(|(k, _)| k == column)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Splits a CSV register into records. Accepts a UTF-8 BOM and CRLF line ends.
pub fn csv_records(bytes: &[u8], name: &str) -> Result<Vec<RawRecord>, ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // The csv crate counts CRLF lines unevenly; with LF only, its line numbers match editors'.
    let bytes: Vec<u8> = bytes
        .iter()
        .enumerate()
        .filter(|(i, b)| !(**b == b'\r' && bytes.get(i + 1) == Some(&b'\n')))
        .map(|(_, b)| *b)
        .collect();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes.as_slice());
    let headers = reader
        .byte_headers()
        .map_err(|e| csv_error(name, e))?
        .clone();
    let headers: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_ascii_lowercase())
        .collect();
    check_columns(&headers, &format!("{name} line 1"))?;
    let mut records = Vec::new();
    for result in reader.byte_records() {
        let record = result.map_err(|e| csv_error(name, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let location = format!("{name} line {line}");
        let mut cells = Vec::new();
        for (header, raw) in headers.iter().zip(record.iter()) {
            let value = std::str::from_utf8(raw).map_err(|_| ImportError {
                location: location.clone(),
                column: Some(header.clone()),
                message: "is not valid UTF-8; save the register as UTF-8".into(),
            })?;
            cells.push((header.clone(), value.to_string()));
        }
        if cells.iter().all(|(_, v)| v.trim().is_empty()) {
            continue; // a blank line
        }
        records.push(RawRecord { location, cells });
    }
    Ok(records)
}

fn csv_error(name: &str, e: csv::Error) -> ImportError {
    let line = e.position().map_or(0, |p| p.line());
    let message = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("has {len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8; save the register as UTF-8".into(),
        _ => e.to_string(),
    };
    ImportError {
        location: format!("{name} line {line}"),
        column: None,
        message,
    }
}

fn check_columns(headers: &[String], location: &str) -> Result<(), ImportError> {
    // A column twice would let one cell silently win over the other.
    if let Some((i, twice)) = headers
        .iter()
        .enumerate()
        .find(|(i, h)| headers[..*i].contains(h))
    {
        return Err(ImportError {
            location: location.into(),
            column: Some(twice.clone()),
            message: format!(
                "appears twice (columns {} and {}); keep one",
                headers.iter().position(|h| h == twice).unwrap_or(0) + 1,
                i + 1
            ),
        });
    }
    if let Some(unknown) = headers.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(ImportError {
            location: location.into(),
            column: Some(unknown.clone()),
            message: format!(
                "is not a register column; the columns are: {}",
                COLUMNS.join(", ")
            ),
        });
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|r| !headers.iter().any(|h| h == r))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError {
            location: location.into(),
            column: None,
            message: format!("required column(s) missing: {}", missing.join(", ")),
        });
    }
    Ok(())
}

/// JSON in which no object has a key twice (serde_json would keep the last silently).
struct UniqueKeys(serde_json::Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = serde_json::Value;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(v.into())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(serde_json::Value::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(serde_json::Value::Null)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(UniqueKeys(v)) = seq.next_element()? {
                    out.push(v);
                }
                Ok(out.into())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let UniqueKeys(v) = map.next_value()?;
                    if out.insert(key.clone(), v).is_some() {
                        return Err(serde::de::Error::custom(format!(
                            "the key `{}` appears twice in one object; keep one",
                            crate::shown_line(&key, 80)
                        )));
                    }
                }
                Ok(out.into())
            }
        }
        d.deserialize_any(Visit).map(UniqueKeys)
    }
}

/// Splits a JSON register (an array of objects, or `{"incidents": [...]}`) into records.
pub fn json_records(bytes: &[u8], name: &str) -> Result<Vec<RawRecord>, ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: serde_json::Value = serde_json::from_slice::<UniqueKeys>(bytes)
        .map(|v| v.0)
        .map_err(|e| ImportError {
            location: format!("{name} line {}", e.line()),
            column: None,
            message: format!("is not valid JSON: {e}"),
        })?;
    let items = match &value {
        serde_json::Value::Array(a) => a,
        serde_json::Value::Object(o) => match o.get("incidents") {
            Some(serde_json::Value::Array(a)) => a,
            _ => {
                return Err(ImportError {
                    location: name.into(),
                    column: None,
                    message: "must be an array of incidents or {\"incidents\": [...]}".into(),
                });
            }
        },
        _ => {
            return Err(ImportError {
                location: name.into(),
                column: None,
                message: "must be an array of incidents or {\"incidents\": [...]}".into(),
            });
        }
    };
    let mut records = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let location = format!("{name} record {}", i + 1);
        let Some(object) = item.as_object() else {
            return Err(ImportError {
                location,
                column: None,
                message: "is not an object".into(),
            });
        };
        let keys: Vec<String> = object.keys().cloned().collect();
        check_columns(&keys, &location)?;
        let mut cells = Vec::new();
        for (k, v) in object {
            let text = match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => other.to_string(),
            };
            cells.push((k.clone(), text));
        }
        records.push(RawRecord { location, cells });
    }
    Ok(records)
}

/// How far after the collection a recorded time may be (clocks and offsets written by hand
/// differ a little); anything later is a mistake in the register.
const FUTURE_TOLERANCE: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Validates every record into incidents, collected at `now`. Every record is checked: the
/// problems of all of them come back at once (one per record, in file order), so a register is
/// fixed in one pass, not one error per run.
pub fn incidents(
    records: &[RawRecord],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Incident>, Vec<ImportError>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for r in records {
        match checked(r, policy, now, &mut seen) {
            Ok(incident) => out.push(incident),
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// One record as an incident: its fields, no time in the future, an id not `seen` before.
fn checked(
    r: &RawRecord,
    policy: &Policy,
    now: DateTime<Utc>,
    seen: &mut BTreeSet<String>,
) -> Result<Incident, ImportError> {
    let incident = incident(r, policy)?;
    for (column, t) in [
        ("detected_at", Some(incident.detected_at)),
        ("triaged_at", incident.triaged_at),
        ("contained_at", incident.contained_at),
        ("resolved_at", incident.resolved_at),
        ("closed_at", incident.closed_at),
        ("postmortem_at", incident.postmortem_at),
        ("authority_notified_at", incident.authority_notified_at),
        ("customers_notified_at", incident.customers_notified_at),
    ] {
        if let Some(t) = t
            && t > now + FUTURE_TOLERANCE
        {
            return Err(ImportError {
                location: r.location.clone(),
                column: Some(column.into()),
                message: format!(
                    "{} is in the future (the register was read at {}); check the date and its offset",
                    t.to_rfc3339(),
                    now.format("%Y-%m-%d %H:%M UTC")
                ),
            });
        }
    }
    if !seen.insert(incident.id.clone()) {
        return Err(ImportError {
            location: r.location.clone(),
            column: Some("id".into()),
            message: format!(
                "`{}` appears twice; incident ids must be unique",
                incident.id
            ),
        });
    }
    Ok(incident)
}

fn incident(r: &RawRecord, policy: &Policy) -> Result<Incident, ImportError> {
    let err = |column: &str, message: String| ImportError {
        location: r.location.clone(),
        column: Some(column.into()),
        message,
    };
    // Spreadsheet formula injection: a cell a spreadsheet would evaluate is refused. A leading
    // apostrophe marks text that only looks like a formula, and is dropped.
    let mut cells = Vec::new();
    for (k, v) in &r.cells {
        let v = v.trim();
        if v.starts_with(['=', '+', '-', '@']) {
            return Err(err(
                k,
                format!(
                    "`{v}` starts with `{}`, which a spreadsheet runs as a formula; remove it, or write `'{v}` for literal text",
                    &v[..1]
                ),
            ));
        }
        cells.push((k.clone(), v.strip_prefix('\'').unwrap_or(v).to_string()));
    }
    let r = RawRecord {
        location: r.location.clone(),
        cells,
    };
    let text = |c: &str| Some(r.get(c).to_string()).filter(|s| !s.is_empty());
    let time = |c: &str| -> Result<Option<DateTime<Utc>>, ImportError> {
        let v = r.get(c);
        if v.is_empty() {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(v).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
            err(c, format!("`{v}` is not an RFC 3339 time with an offset (e.g. 2026-03-01T09:30:00+01:00)"))
        })
    };
    let id = text("id").ok_or_else(|| err("id", "is empty; every incident needs an id".into()))?;
    let title = text("title").ok_or_else(|| err("title", "is empty".into()))?;
    let severity = match text("severity") {
        None => None,
        Some(s) => Some(
            policy
                .severity(&s)
                .ok_or_else(|| {
                    err(
                        "severity",
                        format!(
                            "`{s}` is not a severity; expected one of {}",
                            policy.names()
                        ),
                    )
                })?
                .name
                .clone(),
        ),
    };
    let category = match text("category").map(|c| c.to_ascii_lowercase()) {
        Some(c) if !["security", "availability", "other"].contains(&c.as_str()) => {
            return Err(err(
                "category",
                format!("`{c}` must be security, availability or other"),
            ));
        }
        c => c,
    };
    let detected_at = time("detected_at")?
        .ok_or_else(|| err("detected_at", "is empty; when was it detected?".into()))?;
    let status = r.get("status").to_ascii_lowercase();
    if !["open", "resolved", "closed"].contains(&status.as_str()) {
        return Err(err(
            "status",
            format!("`{status}` must be open, resolved or closed"),
        ));
    }
    let breach = match r.get("personal_data_breach").to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" => false,
        "true" | "yes" | "1" => true,
        other => {
            return Err(err(
                "personal_data_breach",
                format!("`{other}` must be true or false"),
            ));
        }
    };
    let incident = Incident {
        triaged_at: time("triaged_at")?,
        contained_at: time("contained_at")?,
        resolved_at: time("resolved_at")?,
        closed_at: time("closed_at")?,
        postmortem_at: time("postmortem_at")?,
        authority_notified_at: time("authority_notified_at")?,
        customers_notified_at: time("customers_notified_at")?,
        owner: text("owner"),
        postmortem: text("postmortem"),
        personal_data_breach: breach,
        origin: r.location.clone(),
        id,
        title,
        severity,
        category,
        detected_at,
        status,
    };
    for (column, t) in [
        ("triaged_at", incident.triaged_at),
        ("contained_at", incident.contained_at),
        ("resolved_at", incident.resolved_at),
        ("closed_at", incident.closed_at),
        ("authority_notified_at", incident.authority_notified_at),
    ] {
        if let Some(t) = t
            && t < incident.detected_at
        {
            return Err(err(
                column,
                format!("{t} is before detected_at {}", incident.detected_at),
            ));
        }
    }
    if incident.status != "open" && incident.resolved_at.is_none() {
        return Err(err(
            "resolved_at",
            format!("is empty but the status is {}", incident.status),
        ));
    }
    if incident.status == "open" && incident.resolved_at.is_some() {
        return Err(err("status", "is open but resolved_at is set".into()));
    }
    Ok(incident)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "id,title,severity,category,detected_at,triaged_at,resolved_at,status";

    /// When the tests' registers are read.
    fn test_now() -> DateTime<Utc> {
        "2026-11-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_time_in_the_future_is_refused_naming_its_cell() {
        let e = parse(&format!(
            "{HEADER}\nINC-1,Outage,Sev1,security,2027-03-01T09:00:00Z,,,open\n"
        ))
        .unwrap_err();
        assert_eq!(e.column.as_deref(), Some("detected_at"));
        assert!(e.message.contains("is in the future"), "{}", e.message);
        // A few hours ahead is a clock or an offset, not a mistake.
        parse(&format!(
            "{HEADER}\nINC-1,Outage,Sev1,security,2026-11-01T05:00:00Z,,,open\n"
        ))
        .unwrap();
    }

    /// The register's incidents, or its first problem.
    fn parse(csv: &str) -> Result<Vec<Incident>, ImportError> {
        incidents(
            &csv_records(csv.as_bytes(), "register.csv")?,
            &Policy::default(),
            test_now(),
        )
        .map_err(|mut all| all.remove(0))
    }

    fn error(csv: &str) -> String {
        parse(csv).unwrap_err().to_string()
    }

    /// Issue 15: a column or a key twice was accepted silently, one value winning.
    #[test]
    fn a_column_or_a_json_key_twice_is_refused() {
        let e = error(&format!(
            "{HEADER},title\nINC-1,Outage,Sev1,security,2026-03-01T09:00:00Z,,,open,Other\n"
        ));
        assert!(
            e.contains("column `title`: appears twice (columns 2 and 9)"),
            "{e}"
        );
        let json = br#"[{"id": "INC-1", "title": "Outage", "severity": "Sev1", "severity": "Sev4",
            "category": "security", "detected_at": "2026-03-01T09:00:00Z", "status": "open"}]"#;
        let e = json_records(json, "register.json").unwrap_err().to_string();
        assert!(e.contains("the key `severity` appears twice"), "{e}");
        let ok = br#"{"incidents": [{"id": "INC-1", "title": "Outage", "severity": "Sev1",
            "category": "security", "detected_at": "2026-03-01T09:00:00Z", "status": "open",
            "personal_data_breach": false, "owner": null}]}"#;
        assert_eq!(json_records(ok, "register.json").unwrap().len(), 1);
    }

    #[test]
    fn a_good_register_with_bom_and_crlf_parses() {
        let text = format!(
            "\u{feff}{HEADER}\r\nINC-1,Outage,Sev1,availability,2026-03-01T09:00:00+01:00,2026-03-01T09:10:00+01:00,2026-03-01T11:00:00+01:00,resolved\r\nINC-2,Phish,,security,2026-03-02T09:00:00Z,,,open\r\n"
        );
        let got = parse(&text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].detected_at.to_rfc3339(), "2026-03-01T08:00:00+00:00");
        assert_eq!(got[0].severity.as_deref(), Some("Sev1"));
        assert_eq!(got[1].severity, None, "empty severity: not classified yet");
        assert_eq!(got[1].origin, "register.csv line 3");
    }

    #[test]
    fn each_bad_cell_is_named_by_line_and_column() {
        let row = |cells: &str| {
            format!("{HEADER}\nINC-1,Outage,Sev1,security,2026-03-01T09:00:00Z,,,open\n{cells}\n")
        };
        let cases = [
            (
                row("INC-2,X,Sev1,security,yesterday,,,open"),
                "register.csv line 3, column `detected_at`: `yesterday` is not an RFC 3339 time",
            ),
            (
                row("INC-2,X,Sev1,security,2026-03-01T09:00:00,,,open"),
                "column `detected_at`",
            ),
            (
                row("INC-2,X,Sev9,security,2026-03-01T09:00:00Z,,,open"),
                "column `severity`: `Sev9` is not a severity; expected one of Sev1",
            ),
            (
                row("INC-1,X,Sev1,security,2026-03-01T09:00:00Z,,,open"),
                "line 3, column `id`: `INC-1` appears twice",
            ),
            (
                row("INC-2,X,Sev1,security,2026-03-01T09:00:00Z,,2026-02-01T00:00:00Z,resolved"),
                "column `resolved_at`: 2026-02-01 00:00:00 UTC is before detected_at",
            ),
            (
                row("INC-2,=HYPERLINK(\"x\"),Sev1,security,2026-03-01T09:00:00Z,,,open"),
                "column `title`: `=HYPERLINK(\"x\")` starts with `=`",
            ),
            (
                row("INC-2,+1,Sev1,security,2026-03-01T09:00:00Z,,,open"),
                "starts with `+`",
            ),
            (
                row("INC-2,-1,Sev1,security,2026-03-01T09:00:00Z,,,open"),
                "starts with `-`",
            ),
            (
                row("INC-2,@SUM(1),Sev1,security,2026-03-01T09:00:00Z,,,open"),
                "starts with `@`",
            ),
            (
                row("INC-2,X,Sev1,security,2026-03-01T09:00:00Z,,,"),
                "column `status`",
            ),
            (
                row("INC-2,X,Sev1"),
                "line 3: has 3 fields where the header has 8",
            ),
            (
                "id,title,detected_at\nA,B,2026-03-01T09:00:00Z\n".to_string(),
                "line 1: required column(s) missing: severity, status",
            ),
            (
                "id,title,severity,detected_at,status,colour\n".to_string(),
                "column `colour`: is not a register column",
            ),
        ];
        for (csv, expected) in cases {
            let e = error(&csv);
            assert!(
                e.contains(expected),
                "{csv:?}\n  gave: {e}\n  expected: {expected}"
            );
        }
        // A leading apostrophe keeps formula-looking text literal.
        let ok = parse(&row(
            "INC-2,'-1 day outage,Sev1,security,2026-03-01T09:00:00Z,,,open",
        ))
        .unwrap();
        assert_eq!(ok[1].title, "-1 day outage");
    }

    #[test]
    fn every_bad_record_is_reported_at_once_in_file_order() {
        let csv = format!(
            "{HEADER}\nINC-1,Outage,Sev1,security,yesterday,,,open\n\
             INC-2,Fine,Sev2,security,2026-03-01T09:00:00Z,,,open\n\
             INC-3,Later,Sev2,security,2027-03-01T09:00:00Z,,,open\n\
             INC-2,Again,Sev2,security,2026-03-02T09:00:00Z,,,open\n"
        );
        let all = incidents(
            &csv_records(csv.as_bytes(), "register.csv").unwrap(),
            &Policy::default(),
            test_now(),
        )
        .unwrap_err();
        let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 3, "{shown:?}");
        assert!(
            shown[0].starts_with("register.csv line 2, column `detected_at`"),
            "{shown:?}"
        );
        assert!(
            shown[1].contains("line 4") && shown[1].contains("in the future"),
            "{shown:?}"
        );
        assert!(
            shown[2].contains("line 5") && shown[2].contains("`INC-2` appears twice"),
            "{shown:?}"
        );
    }

    #[test]
    fn invalid_utf8_is_named_by_line() {
        let mut bytes = format!("{HEADER}\nINC-1,Out").into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"age,Sev1,security,2026-03-01T09:00:00Z,,,open\n");
        let e = match csv_records(&bytes, "register.csv") {
            Err(e) => e.to_string(),
            Ok(records) => {
                incidents(&records, &Policy::default(), test_now()).unwrap_err()[0].to_string()
            }
        };
        assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn json_registers_use_the_same_columns() {
        let json = r#"{"incidents": [{"id": "INC-1", "title": "Outage", "severity": "critical", "detected_at": "2026-03-01T09:00:00Z", "status": "open", "personal_data_breach": true}]}"#;
        let got = incidents(
            &json_records(json.as_bytes(), "register.json").unwrap(),
            &Policy::default(),
            test_now(),
        )
        .unwrap();
        assert_eq!(got[0].severity.as_deref(), Some("Sev1"));
        assert!(got[0].personal_data_breach);
        let bad = r#"[{"id": "INC-1", "title": "x", "severity": "Sev1", "detected_at": "2026-03-01", "status": "open"}]"#;
        let e = incidents(
            &json_records(bad.as_bytes(), "register.json").unwrap(),
            &Policy::default(),
            test_now(),
        )
        .unwrap_err()
        .remove(0);
        assert_eq!(e.location, "register.json record 1");
        assert_eq!(e.column.as_deref(), Some("detected_at"));
        let e = json_records(b"[{\"id\": ", "register.json").unwrap_err();
        assert!(e.to_string().contains("is not valid JSON"), "{e}");
    }
}
