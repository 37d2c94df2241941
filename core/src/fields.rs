//! Field selectors: the `?fieldSelector=` string syntax, behaving like
//! `k8s.io/apimachinery/pkg/fields` (selector.go, `ParseSelector`).
//!
//! A field selector is a comma-separated AND of `field=value`,
//! `field==value` and `field!=value` terms. Values may escape `\`, `,` and
//! `=` with a backslash; field names are taken literally (no escaping).
//!
//! This module does not know which fields a kind supports. kube-apiserver
//! checks every field name against a per-kind allow-list (for most kinds
//! just `metadata.name` and `metadata.namespace`) and answers an unknown one
//! with a 400 `BadRequest` whose message is `field label not supported:
//! <field>`; the server using this module must do the same before calling
//! [`FieldSelector::matches`].

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use crate::labels::SelectorError;

/// The comparison in one field selector term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value`.
    Equals,
    /// `field==value`; same meaning as [`FieldOperator::Equals`].
    DoubleEquals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector (`fields.Requirement`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// The field path as written, e.g. `metadata.name` or `spec.nodeName`.
    pub field: String,
    /// How the object's value is compared with `value`.
    pub operator: FieldOperator,
    /// The unescaped value compared against.
    pub value: String,
}

impl FieldRequirement {
    /// Whether an object whose field has the value `actual` satisfies this
    /// term (absent fields are passed as `""`, as the apiserver's field sets do).
    pub fn matches(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

/// Renders like apimachinery's `hasTerm`/`notHasTerm`: `field=value` (also
/// for `==`, which apimachinery does not preserve) or `field!=value`, with the
/// value escaped by [`escape_value`].
impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{}{}", self.field, op, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its [`FieldRequirement`]s, in
/// apimachinery's order (terms sorted as raw strings before parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches everything (`fields.Everything()`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses a field selector string exactly like `fields.ParseSelector`.
    ///
    /// Terms are split on unescaped commas and sorted; empty terms are
    /// skipped, so `""` selects everything. Each term is split at the first
    /// `!=`, `==` or `=`; the value is unescaped (`\\`, `\,`, `\=`). A term
    /// whose field and value are both empty (e.g. `=`) is dropped, as
    /// apimachinery's identity transform does.
    ///
    /// Errors (apimachinery's text):
    /// `invalid selector: '<selector>'; can't understand '<term>'` (no operator),
    /// `invalid field selector: invalid escape sequence: \x` (any other escape,
    /// including `\!`, or a trailing `\`), and
    /// `invalid field selector: unescaped character in value: 61` (a bare `=`
    /// in a value; Go prints the code point as a number).
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut terms = split_terms(selector);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(SelectorError::new(format!(
                    "invalid selector: '{selector}'; can't understand '{term}'"
                )));
            };
            let value = unescape_value(raw_value)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(Self { requirements })
    }

    /// The requirements in evaluation order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True when the selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object satisfies every term. `get(field)` returns the
    /// object's value for that field (see [`json_field`]); `None` compares as
    /// the empty string, as the apiserver's `fields.Set` does.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(get(&r.field).as_deref().unwrap_or("")))
    }

    /// `Selector.RequiresExactMatch`: the value of the first `=`/`==` term on
    /// `field`, if any.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }
}

/// The canonical string form: terms joined by `,` with escaped values,
/// e.g. `metadata.name!=x,spec.nodeName=a\,b`; empty for everything.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Same as [`FieldSelector::parse`].
impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `fields.EscapeValue`: prefixes `\`, `,` and `=` with a backslash so an
/// arbitrary string can be used as a field selector value.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `fields.UnescapeValue`: undoes [`escape_value`].
///
/// Errors: `invalid field selector: invalid escape sequence: \<c>` for any
/// escape other than `\\`, `\,`, `\=` (or `... sequence: \` for a trailing
/// backslash), and `invalid field selector: unescaped character in value:
/// <code point>` for a bare `,` or `=`.
pub fn unescape_value(value: &str) -> Result<String, SelectorError> {
    if !value.contains(['\\', ',', '=']) {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut in_slash = false;
    for c in value.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(SelectorError::new(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::new(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::new(
            "invalid field selector: invalid escape sequence: \\",
        ));
    }
    Ok(out)
}

/// Reads a field for field-selector matching from a JSON object, following
/// a dotted path such as `metadata.name`, `spec.nodeName` or
/// `involvedObject.kind`.
///
/// Strings are returned as-is, numbers and booleans as their JSON text
/// (`3`, `1.5`, `true`; Go's `strconv.FormatBool` gives the same). A missing
/// member, `null`, an object or an array yields `None` (which
/// [`FieldSelector::matches`] compares as `""`). An empty path yields `None`.
pub fn json_field(obj: &Value, dotted_path: &str) -> Option<String> {
    if dotted_path.is_empty() {
        return None;
    }
    let mut current = obj;
    for segment in dotted_path.split('.') {
        current = current.as_object()?.get(segment)?;
    }
    match current {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// `splitTerms`: splits on commas not preceded by an (unescaped) backslash,
/// keeping escapes in the terms. The empty selector has no terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// `splitTerm`: the first position where `!=`, `==` or `=` starts (checked
/// in that order) splits the term into field, operator and raw value.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let remaining = &term[i..];
        for (op, operator) in OPERATORS {
            if remaining.starts_with(op) {
                return Some((&term[..i], operator, &term[i + op.len()..]));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn freq(field: &str, operator: FieldOperator, value: &str) -> FieldRequirement {
        FieldRequirement {
            field: field.to_string(),
            operator,
            value: value.to_string(),
        }
    }

    #[test]
    fn parse_good_table() {
        use FieldOperator::*;
        let cases: Vec<(&str, Vec<FieldRequirement>, &str)> = vec![
            ("", vec![], ""),
            (",", vec![], ""),
            ("=", vec![], ""),
            ("!=", vec![], ""),
            ("==", vec![], ""),
            ("a=b", vec![freq("a", Equals, "b")], "a=b"),
            ("a==b", vec![freq("a", DoubleEquals, "b")], "a=b"),
            ("a!=b", vec![freq("a", NotEquals, "b")], "a!=b"),
            (
                "metadata.name!=x",
                vec![freq("metadata.name", NotEquals, "x")],
                "metadata.name!=x",
            ),
            ("a=", vec![freq("a", Equals, "")], "a="),
            ("=b", vec![freq("", Equals, "b")], "=b"),
            ("a=b,", vec![freq("a", Equals, "b")], "a=b"),
            (",a=b,,", vec![freq("a", Equals, "b")], "a=b"),
            // terms are sorted as raw strings
            (
                "x=a,b=c",
                vec![freq("b", Equals, "c"), freq("x", Equals, "a")],
                "b=c,x=a",
            ),
            (
                "spec.nodeName=n1,metadata.namespace!=kube-system",
                vec![
                    freq("metadata.namespace", NotEquals, "kube-system"),
                    freq("spec.nodeName", Equals, "n1"),
                ],
                "metadata.namespace!=kube-system,spec.nodeName=n1",
            ),
            // escapes in values
            ("a=b\\,c", vec![freq("a", Equals, "b,c")], "a=b\\,c"),
            ("a=b\\=c", vec![freq("a", Equals, "b=c")], "a=b\\=c"),
            ("a=b\\\\c", vec![freq("a", Equals, "b\\c")], "a=b\\\\c"),
            (
                "a=b\\,c,d!=e\\=f",
                vec![freq("a", Equals, "b,c"), freq("d", NotEquals, "e=f")],
                "a=b\\,c,d!=e\\=f",
            ),
            // a lone '!' is data; only '!=' is an operator
            ("a=b!c", vec![freq("a", Equals, "b!c")], "a=b!c"),
            ("a!b=c", vec![freq("a!b", Equals, "c")], "a!b=c"),
            ("a=!b", vec![freq("a", Equals, "!b")], "a=!b"),
            ("a==!b", vec![freq("a", DoubleEquals, "!b")], "a=!b"),
            // whitespace is not trimmed
            (" a = b ", vec![freq(" a ", Equals, " b ")], " a = b "),
            ("a=é", vec![freq("a", Equals, "é")], "a=é"),
        ];
        for (input, want, rendered) in cases {
            let sel = FieldSelector::parse(input)
                .unwrap_or_else(|e| panic!("parse({input:?}) failed: {e}"));
            assert_eq!(sel.requirements(), want.as_slice(), "input {input:?}");
            assert_eq!(sel.to_string(), rendered, "input {input:?}");
            assert_eq!(sel.is_empty(), want.is_empty(), "input {input:?}");
            assert_eq!(input.parse::<FieldSelector>().unwrap(), sel);
        }
    }

    #[test]
    fn parse_error_table() {
        let cases: Vec<(&str, &str)> = vec![
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("x=1,b", "invalid selector: 'x=1,b'; can't understand 'b'"),
            ("a!b", "invalid selector: 'a!b'; can't understand 'a!b'"),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a==b==c",
                "invalid field selector: unescaped character in value: 61",
            ),
            (
                "a=b\\!c",
                "invalid field selector: invalid escape sequence: \\!",
            ),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
            // an escaped backslash does not protect the following comma
            (
                "a=b\\\\,c",
                "invalid selector: 'a=b\\\\,c'; can't understand 'c'",
            ),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn escape_round_trip() {
        let cases = [
            ("", ""),
            ("plain", "plain"),
            ("a,b", "a\\,b"),
            ("a=b", "a\\=b"),
            ("a\\b", "a\\\\b"),
            ("!", "!"),
            ("\\,=", "\\\\\\,\\="),
        ];
        for (raw, escaped) in cases {
            assert_eq!(escape_value(raw), escaped, "{raw:?}");
            assert_eq!(unescape_value(escaped).unwrap(), raw, "{escaped:?}");
        }
        assert_eq!(
            unescape_value("a,b").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 44"
        );
    }

    #[test]
    fn matching_table() {
        let fields: BTreeMap<&str, &str> = BTreeMap::from([
            ("metadata.name", "web-1"),
            ("metadata.namespace", "default"),
            ("spec.nodeName", "a,b"),
            ("status.phase", ""),
        ]);
        let get = |f: &str| fields.get(f).map(|v| v.to_string());
        let cases: Vec<(&str, bool)> = vec![
            ("", true),
            ("metadata.name=web-1", true),
            ("metadata.name==web-1", true),
            ("metadata.name=web-2", false),
            ("metadata.name!=x", true),
            ("metadata.name!=web-1", false),
            ("metadata.name=web-1,metadata.namespace=default", true),
            ("metadata.name=web-1,metadata.namespace!=default", false),
            ("spec.nodeName=a\\,b", true),
            ("spec.nodeName=a", false),
            // absent fields compare as the empty string
            ("spec.missing=", true),
            ("spec.missing!=", false),
            ("spec.missing=x", false),
            ("spec.missing!=x", true),
            ("status.phase=", true),
        ];
        for (selector, want) in cases {
            let sel = FieldSelector::parse(selector).unwrap();
            assert_eq!(sel.matches(get), want, "{selector:?}");
        }
    }

    #[test]
    fn requires_exact_match() {
        let sel = FieldSelector::parse("metadata.name=a,spec.nodeName!=b").unwrap();
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("a"));
        assert_eq!(sel.requires_exact_match("spec.nodeName"), None);
        assert_eq!(sel.requires_exact_match("other"), None);
        let sel = FieldSelector::parse("metadata.name==a").unwrap();
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("a"));
    }

    #[test]
    fn json_field_table() {
        let obj = json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"nodeName": "n1", "replicas": 3, "unschedulable": false, "ratio": 1.5, "ports": [1]},
            "involvedObject": {"kind": "Pod"},
            "status": {"phase": null},
            "type": "Normal"
        });
        let cases: Vec<(&str, Option<&str>)> = vec![
            ("metadata.name", Some("p")),
            ("metadata.namespace", Some("ns")),
            ("spec.nodeName", Some("n1")),
            ("involvedObject.kind", Some("Pod")),
            ("type", Some("Normal")),
            ("spec.replicas", Some("3")),
            ("spec.unschedulable", Some("false")),
            ("spec.ratio", Some("1.5")),
            ("spec.ports", None),
            ("metadata.labels", None),
            ("status.phase", None),
            ("status.phase.x", None),
            ("spec.nodeName.x", None),
            ("spec.missing", None),
            ("missing.deeper", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(json_field(&obj, path).as_deref(), want, "{path:?}");
        }
        assert_eq!(json_field(&json!("str"), "a"), None);
        let sel = FieldSelector::parse("spec.nodeName=n1,spec.replicas=3,status.phase=").unwrap();
        assert!(sel.matches(|f| json_field(&obj, f)));
        let sel = FieldSelector::parse("involvedObject.kind!=Pod").unwrap();
        assert!(!sel.matches(|f| json_field(&obj, f)));
    }
}
