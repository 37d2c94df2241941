//! Label selectors: the `?labelSelector=` string syntax and `metav1.LabelSelector`
//! objects, behaving like `k8s.io/apimachinery/pkg/labels` (selector.go) and
//! `k8s.io/apimachinery/pkg/apis/meta/v1` (helpers.go).
//!
//! The parser is a port of apimachinery's lexer and recursive-descent parser,
//! so it accepts and rejects the same strings and reports the same error
//! text, e.g. `unable to parse requirement: <nil>: Invalid value: "a/b/c": ...`
//! or `found ',', expected: identifier after ','`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::validation::{is_qualified_name, is_valid_label_value};

/// A selector that could not be parsed or converted.
///
/// [`fmt::Display`] (and [`SelectorError::message`]) give the message that
/// apimachinery's `labels.Parse`, `metav1.LabelSelectorAsSelector` or
/// `fields.ParseSelector` would return for the same input; kube-apiserver
/// answers such a query parameter with a 400 `BadRequest` carrying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    message: String,
}

impl SelectorError {
    /// Builds an error carrying `message` verbatim.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The apimachinery-compatible message text.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A label selector operator, like `k8s.io/apimachinery/pkg/selection.Operator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value`: the label exists and equals the single value.
    Equals,
    /// `key==value`: same semantics as [`Operator::Equals`], kept for rendering.
    DoubleEquals,
    /// `key!=value`: the label is absent or differs from the single value.
    NotEquals,
    /// `key in (a,b)`: the label exists and equals one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or equals none of the values.
    NotIn,
    /// `key`: the label exists (any value).
    Exists,
    /// `!key`: the label does not exist.
    DoesNotExist,
    /// `key>n`: the label exists, parses as an `i64` and is greater than `n`.
    GreaterThan,
    /// `key<n`: the label exists, parses as an `i64` and is less than `n`.
    LessThan,
}

impl Operator {
    /// The `selection.Operator` string: `=`, `==`, `!=`, `in`, `notin`,
    /// `exists`, `!`, `gt`, `lt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One clause of a label selector (`labels.Requirement`).
///
/// `values` holds one value for `=`, `==`, `!=`, `>`, `<`, at least one for
/// `in`/`notin` and none for exists/does-not-exist. Parsed requirements have
/// their values sorted and de-duplicated (apimachinery parses them into a
/// string set); requirements converted from a `metav1.LabelSelector` keep the
/// object's order, as `LabelSelectorAsSelector` does. Rendering always sorts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key, a qualified name such as `app` or `example.com/app`.
    pub key: String,
    /// How the label's value is compared with `values`.
    pub operator: Operator,
    /// The values compared against; see the type documentation for arity.
    pub values: Vec<String>,
}

impl Requirement {
    /// Validates and builds a requirement like `labels.NewRequirement`.
    ///
    /// Errors (joined apimachinery-style, `[a, b]` when several) are
    /// `key: Invalid value: "<key>": <qualified-name problems>`, the arity
    /// messages (`for 'in', 'notin' operators, values set can't be empty`,
    /// `exact-match compatibility requires one single value`,
    /// `values set must be empty for exists and does not exist`,
    /// `for 'Gt', 'Lt' operators, exactly one value is required`,
    /// `values[i]: ... for 'Gt', 'Lt' operators, the value must be an integer`)
    /// and `values[i][<key>]: Invalid value: "<v>": <label-value problems>`.
    pub fn new(
        key: impl Into<String>,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, SelectorError> {
        let key = key.into();
        let mut errs: Vec<String> = Vec::new();
        let key_errs = is_qualified_name(&key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", &go_quote(&key), &key_errs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid(
                        "values",
                        &go_json_strings(&values),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid(
                        "values",
                        &go_json_strings(&values),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid(
                        "values",
                        &go_json_strings(&values),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid(
                        "values",
                        &go_json_strings(&values),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            &go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    &go_quote(v),
                    &value_errs.join("; "),
                ));
            }
        }
        if errs.is_empty() {
            Ok(Requirement {
                key,
                operator,
                values,
            })
        } else {
            Err(SelectorError::new(aggregate(errs)))
        }
    }

    /// Whether the labels satisfy this requirement (`Requirement.Matches`).
    ///
    /// `!=` and `notin` match when the key is absent; `>`/`<` never match an
    /// absent key or a value that does not parse as an `i64`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        let has_value = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                get(&self.key).is_some_and(has_value)
            }
            Operator::NotIn | Operator::NotEquals => match get(&self.key) {
                None => true,
                Some(v) => !has_value(v),
            },
            Operator::Exists => get(&self.key).is_some(),
            Operator::DoesNotExist => get(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = get(&self.key).and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

/// Renders like `Requirement.String`: `!key`, `key`, `key=v`, `key==v`,
/// `key!=v`, `key>v`, `key<v`, `key in (a,b)`, `key notin (a,b)`; multiple
/// values are printed sorted (not de-duplicated).
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            Operator::Equals => ("=", false),
            Operator::DoubleEquals => ("==", false),
            Operator::NotEquals => ("!=", false),
            Operator::In => (" in ", true),
            Operator::NotIn => (" notin ", true),
            Operator::GreaterThan => (">", false),
            Operator::LessThan => ("<", false),
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        if self.values.len() == 1 {
            f.write_str(&self.values[0])?;
        } else {
            let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            f.write_str(&sorted.join(","))?;
        }
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its [`Requirement`]s, kept sorted by key
/// (stable for equal keys) like apimachinery's `internalSelector`.
///
/// The empty selector matches everything. apimachinery's separate "nothing"
/// selector (what a `null` `metav1.LabelSelector` converts to) is not
/// represented here; callers handle `null` before converting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything (`labels.Everything()`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Builds a selector from already-validated requirements, sorting them
    /// by key like `Selector.Add`.
    pub fn from_requirements(requirements: impl IntoIterator<Item = Requirement>) -> Self {
        let mut requirements: Vec<Requirement> = requirements.into_iter().collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    /// Parses the `?labelSelector=` string form exactly like `labels.Parse`.
    ///
    /// Grammar: comma-separated requirements `[!]KEY`, `KEY (=|==|!=) VALUE`,
    /// `KEY (>|<) INTEGER`, `KEY (in|notin) (V1,V2,...)`; spaces, tabs, CR and
    /// LF separate tokens; the empty (or all-whitespace) string selects
    /// everything; an empty value (`x=`, `x in ()`) is the empty string.
    /// Keys are validated as qualified names, values as label values.
    ///
    /// Errors carry apimachinery's text, e.g. `found '=', expected: !,
    /// identifier, or 'end of string'`, `unable to parse requirement: found
    /// 'a' expected: '('` or `unable to parse requirement: <nil>: Invalid
    /// value: "a/b/c": a qualified name must consist of ...`.
    pub fn parse(selector: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(selector);
        let requirements = parser.parse()?;
        Ok(Self::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector` JSON object like
    /// `metav1.LabelSelectorAsSelector`.
    ///
    /// `{}` (no `matchLabels`, no `matchExpressions`) selects everything.
    /// `matchLabels` entries become `key=value`; `matchExpressions` entries
    /// (`key`, `operator` one of `In`, `NotIn`, `Exists`, `DoesNotExist`,
    /// `values`) become the matching requirement with their values kept in
    /// the given order. Validation errors use apimachinery's text, e.g.
    /// `"Gt" is not a valid pod selector operator` or
    /// `values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`.
    ///
    /// A `null` selector means "matches nothing" in Kubernetes (e.g. a
    /// PodDisruptionBudget or Service without selector); callers must check
    /// for `null`/absence themselves. Here `null` and every other non-object
    /// (and wrongly typed members) are rejected with an error.
    pub fn from_label_selector_json(value: &Value) -> Result<Self, SelectorError> {
        let obj = value.as_object().ok_or_else(|| {
            SelectorError::new(format!(
                "invalid label selector: expected an object, got {}",
                json_kind(value)
            ))
        })?;
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, v) in entries {
                    let v = v.as_str().ok_or_else(|| {
                        SelectorError::new(format!(
                            "invalid label selector: matchLabels[{k}] must be a string, got {}",
                            json_kind(v)
                        ))
                    })?;
                    requirements.push(Requirement::new(
                        k.clone(),
                        Operator::Equals,
                        vec![v.to_string()],
                    )?);
                }
            }
            Some(other) => {
                return Err(SelectorError::new(format!(
                    "invalid label selector: matchLabels must be an object, got {}",
                    json_kind(other)
                )));
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    requirements.push(expression_requirement(i, expr)?);
                }
            }
            Some(other) => {
                return Err(SelectorError::new(format!(
                    "invalid label selector: matchExpressions must be an array, got {}",
                    json_kind(other)
                )));
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when the selector has no requirements and so matches everything
    /// (`Selector.Empty`).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every requirement matches the label map (`Selector.Matches`).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Like [`LabelSelector::matches`] for an object's `metadata.labels` JSON.
    ///
    /// `None`, `null` or a non-object means "no labels"; members whose value
    /// is not a string are treated as absent.
    pub fn matches_json(&self, labels: Option<&Value>) -> bool {
        let obj = labels.and_then(Value::as_object);
        self.requirements
            .iter()
            .all(|r| r.matches_with(|k| obj.and_then(|o| o.get(k)).and_then(Value::as_str)))
    }

    /// `Selector.RequiresExactMatch`: if the first requirement on `key` is
    /// `=`, `==` or `in` with exactly one value, that value.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }

    /// What `metav1.FormatLabelSelector` prints: the canonical string form
    /// (e.g. `app=web,tier in (a,b)`), or `<none>` for an empty selector.
    ///
    /// Note: kube-apiserver fills a Scale subresource's `status.selector`
    /// with `selector.String()`, i.e. this selector's [`fmt::Display`], which
    /// is the same text except that an empty selector renders as `""`.
    pub fn to_selector_string(&self) -> String {
        if self.is_empty() {
            "<none>".to_string()
        } else {
            self.to_string()
        }
    }
}

/// The canonical string form (`Selector.String`): requirements joined by
/// `,`, e.g. `x in (a,b),y!=c,!z`; empty for the everything selector.
impl fmt::Display for LabelSelector {
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

/// Same as [`LabelSelector::parse`].
impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn expression_requirement(index: usize, expr: &Value) -> Result<Requirement, SelectorError> {
    let obj = expr.as_object().ok_or_else(|| {
        SelectorError::new(format!(
            "invalid label selector: matchExpressions[{index}] must be an object, got {}",
            json_kind(expr)
        ))
    })?;
    let string_member = |name: &str| -> Result<String, SelectorError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(SelectorError::new(format!(
                "invalid label selector: matchExpressions[{index}].{name} must be a string, got {}",
                json_kind(other)
            ))),
        }
    };
    let key = string_member("key")?;
    let op_name = string_member("operator")?;
    let values = match obj.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    SelectorError::new(format!(
                        "invalid label selector: matchExpressions[{index}].values must contain only strings, got {}",
                        json_kind(v)
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(SelectorError::new(format!(
                "invalid label selector: matchExpressions[{index}].values must be an array, got {}",
                json_kind(other)
            )));
        }
    };
    let operator = match op_name.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        _ => {
            return Err(SelectorError::new(format!(
                "{} is not a valid pod selector operator",
                go_quote(&op_name)
            )));
        }
    };
    Requirement::new(key, operator, values)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `field.Invalid(path, value, detail).Error()`.
fn invalid(path: &str, rendered_value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {rendered_value}: {detail}")
}

/// `ErrorList.ToAggregate().Error()`: de-duplicated, `[a, b]` when several.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen = BTreeSet::new();
    let unique: Vec<String> = errs
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect();
    if unique.len() == 1 {
        unique.into_iter().next().unwrap_or_default()
    } else {
        format!("[{}]", unique.join(", "))
    }
}

/// Go's `%q` / `strconv.Quote` for a string (printability approximated with
/// Rust's control/whitespace classes).
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if c.is_control() || c.is_whitespace() => {
                let n = c as u32;
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal` of a `[]string` as `field.Invalid` renders it
/// (`null` for the nil slice apimachinery passes when there are no values;
/// HTML-sensitive characters escaped).
fn go_json_strings(values: &[String]) -> String {
    if values.is_empty() {
        return "null".to_string();
    }
    let json = serde_json::to_string(values).unwrap_or_default();
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

// ---------------------------------------------------------------------------
// Lexer and parser: a direct port of apimachinery's labels/selector.go.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn string_to_token(s: &[u8]) -> Option<Token> {
    Some(match s {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// Returns the next byte, or 0 at the end (a NUL byte also reads as 0,
    /// exactly as in apimachinery).
    fn read(&mut self) -> u8 {
        if self.pos < self.s.len() {
            let b = self.s[self.pos];
            self.pos += 1;
            b
        } else {
            0
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buffer = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            buffer.push(ch);
        }
        let lit = String::from_utf8_lossy(&buffer).into_owned();
        match string_to_token(&buffer) {
            Some(tok) => (tok, lit),
            None => (Token::Identifier, lit),
        }
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, String)> = None;
        let mut buffer = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) {
                buffer.push(ch);
                if let Some(tok) = string_to_token(&buffer) {
                    last = Some((tok, String::from_utf8_lossy(&buffer).into_owned()));
                } else if last.is_some() {
                    self.unread();
                    break;
                }
            } else {
                self.unread();
                break;
            }
        }
        match last {
            Some(item) => item,
            None => (
                Token::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&buffer)
                ),
            ),
        }
    }

    fn skip_white_spaces(&mut self, mut ch: u8) -> u8 {
        while is_whitespace(ch) {
            ch = self.read();
        }
        ch
    }

    fn lex(&mut self) -> (Token, String) {
        let first = self.read();
        let ch = self.skip_white_spaces(first);
        if ch == 0 {
            (Token::EndOfString, String::new())
        } else if is_special_symbol(ch) {
            self.unread();
            self.scan_special_symbol()
        } else {
            self.unread();
            self.scan_id_or_keyword()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(selector: &str) -> Self {
        let mut lexer = Lexer {
            s: selector.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let (tok, lit) = lexer.lex();
            let end = tok == Token::EndOfString;
            items.push((tok, lit));
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn item(&self, index: usize, ctx: Context) -> (Token, String) {
        let (tok, lit) = &self.items[index.min(self.items.len() - 1)];
        let tok = match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => *tok,
        };
        (tok, lit.clone())
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        self.item(self.position, ctx)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.item(self.position, ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| {
                        SelectorError::new(format!("unable to parse requirement: {e}"))
                    })?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(SelectorError::new(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::new(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(SelectorError::new(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = inferred {
            return Requirement::new(key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, operator, values.into_iter().collect())
    }

    fn parse_key_and_infer_operator(
        &mut self,
    ) -> Result<(String, Option<Operator>), SelectorError> {
        let mut operator = None;
        let (mut tok, mut literal) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, literal) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(SelectorError::new(format!(
                "found '{literal}', expected: identifier"
            )));
        }
        let errs = is_qualified_name(&literal);
        if !errs.is_empty() {
            return Err(SelectorError::new(invalid(
                "<nil>",
                &go_quote(&literal),
                &errs.join("; "),
            )));
        }
        let (t, _) = self.lookahead(Context::Values);
        if (t == Token::EndOfString || t == Token::Comma)
            && operator != Some(Operator::DoesNotExist)
        {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => {
                return Err(SelectorError::new(format!(
                    "found '{lit}', expected: {BINARY_OPERATORS}"
                )));
            }
        })
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(SelectorError::new(format!("found '{lit}' expected: '('")));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Token::ClosedPar {
                    return Err(SelectorError::new(format!("found '{lit}', expected: ')'")));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(SelectorError::new(format!(
                "found '{lit}', expected: ',', ')' or identifier"
            ))),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => {
                            return Err(SelectorError::new(format!(
                                "found '{lit2}', expected: ',' or ')'"
                            )));
                        }
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        set.insert(String::new());
                        return Ok(set);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        set.insert(String::new());
                    }
                }
                _ => {
                    return Err(SelectorError::new(format!(
                        "found '{lit}', expected: ',', or identifier"
                    )));
                }
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Token::EndOfString || tok == Token::Comma {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            return Ok(BTreeSet::from([lit]));
        }
        Err(SelectorError::new(format!(
            "found '{lit}', expected: identifier"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.to_string(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_good_requirements_and_rendering() {
        use Operator::*;
        let cases: Vec<(&str, Vec<Requirement>, &str)> = vec![
            ("", vec![], ""),
            ("   \t\n", vec![], ""),
            ("x", vec![req("x", Exists, &[])], "x"),
            ("\rx", vec![req("x", Exists, &[])], "x"),
            ("a ", vec![req("a", Exists, &[])], "a"),
            ("!x", vec![req("x", DoesNotExist, &[])], "!x"),
            ("! x", vec![req("x", DoesNotExist, &[])], "!x"),
            ("x=a", vec![req("x", Equals, &["a"])], "x=a"),
            ("x==a", vec![req("x", DoubleEquals, &["a"])], "x==a"),
            ("x!=a", vec![req("x", NotEquals, &["a"])], "x!=a"),
            ("x = a", vec![req("x", Equals, &["a"])], "x=a"),
            ("x=", vec![req("x", Equals, &[""])], "x="),
            ("x= ", vec![req("x", Equals, &[""])], "x="),
            (
                "x=,z= ",
                vec![req("x", Equals, &[""]), req("z", Equals, &[""])],
                "x=,z=",
            ),
            (
                "x= ,z= ",
                vec![req("x", Equals, &[""]), req("z", Equals, &[""])],
                "x=,z=",
            ),
            ("x>1", vec![req("x", GreaterThan, &["1"])], "x>1"),
            ("x<7", vec![req("x", LessThan, &["7"])], "x<7"),
            (
                "x>1,z<5",
                vec![req("x", GreaterThan, &["1"]), req("z", LessThan, &["5"])],
                "x>1,z<5",
            ),
            (
                "x=a,y!=b",
                vec![req("x", Equals, &["a"]), req("y", NotEquals, &["b"])],
                "x=a,y!=b",
            ),
            (
                "x=a,y=b,z=c",
                vec![
                    req("x", Equals, &["a"]),
                    req("y", Equals, &["b"]),
                    req("z", Equals, &["c"]),
                ],
                "x=a,y=b,z=c",
            ),
            (
                "x=a,y!=b,z in (h,i,j)",
                vec![
                    req("x", Equals, &["a"]),
                    req("y", NotEquals, &["b"]),
                    req("z", In, &["h", "i", "j"]),
                ],
                "x=a,y!=b,z in (h,i,j)",
            ),
            (
                "x in (a,b),y",
                vec![req("x", In, &["a", "b"]), req("y", Exists, &[])],
                "x in (a,b),y",
            ),
            ("x notin (a)", vec![req("x", NotIn, &["a"])], "x notin (a)"),
            // values are a sorted, de-duplicated set
            (
                "x in (b,a,b)",
                vec![req("x", In, &["a", "b"])],
                "x in (a,b)",
            ),
            (
                "x in (abc,)",
                vec![req("x", In, &["", "abc"])],
                "x in (,abc)",
            ),
            ("x in ()", vec![req("x", In, &[""])], "x in ()"),
            ("x notin ( )", vec![req("x", NotIn, &[""])], "x notin ()"),
            (
                "x notin (, a)",
                vec![req("x", NotIn, &["", "a"])],
                "x notin (,a)",
            ),
            (
                "x in (a,,b)",
                vec![req("x", In, &["", "a", "b"])],
                "x in (,a,b)",
            ),
            ("x in (,)", vec![req("x", In, &[""])], "x in ()"),
            (
                "foo  in\t (abc)",
                vec![req("foo", In, &["abc"])],
                "foo in (abc)",
            ),
            (
                "x notin\n (abc)",
                vec![req("x", NotIn, &["abc"])],
                "x notin (abc)",
            ),
            (
                "x  notin\t\t(abc,def)",
                vec![req("x", NotIn, &["abc", "def"])],
                "x notin (abc,def)",
            ),
            (
                "x notin (abc,,def),bar,z in (),w",
                vec![
                    req("bar", Exists, &[]),
                    req("w", Exists, &[]),
                    req("x", NotIn, &["", "abc", "def"]),
                    req("z", In, &[""]),
                ],
                "bar,w,x notin (,abc,def),z in ()",
            ),
            // requirements are sorted by key
            (
                "x,y in (a)",
                vec![req("x", Exists, &[]), req("y", In, &["a"])],
                "x,y in (a)",
            ),
            (
                "y=b,x=a",
                vec![req("x", Equals, &["a"]), req("y", Equals, &["b"])],
                "x=a,y=b",
            ),
            // duplicate keys keep their relative order
            (
                "z!=a,z",
                vec![req("z", NotEquals, &["a"]), req("z", Exists, &[])],
                "z!=a,z",
            ),
            // 'in' and 'notin' are identifiers where a key or value is expected
            ("notin=in", vec![req("notin", Equals, &["in"])], "notin=in"),
            (
                "in in (in,notin)",
                vec![req("in", In, &["in", "notin"])],
                "in in (in,notin)",
            ),
            (
                "a in (x,y,notin, z,in)",
                vec![req("a", In, &["in", "notin", "x", "y", "z"])],
                "a in (in,notin,x,y,z)",
            ),
            (
                "example.com/app=web",
                vec![req("example.com/app", Equals, &["web"])],
                "example.com/app=web",
            ),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                vec![req("this-is-a-dns.domain.com/key-with-dash", Exists, &[])],
                "this-is-a-dns.domain.com/key-with-dash",
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                vec![req(
                    "0.1.2.domain/99",
                    NotIn,
                    &["10.10.100.1", "tick.tack.clock"],
                )],
                "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
            ),
            (
                "x=A_b.C-9",
                vec![req("x", Equals, &["A_b.C-9"])],
                "x=A_b.C-9",
            ),
            // a NUL byte ends the input at token start, like apimachinery's lexer
            ("x \0garbage", vec![req("x", Exists, &[])], "x"),
        ];
        for (input, want, rendered) in cases {
            let sel = LabelSelector::parse(input)
                .unwrap_or_else(|e| panic!("parse({input:?}) failed: {e}"));
            assert_eq!(sel.requirements(), want.as_slice(), "input {input:?}");
            assert_eq!(sel.to_string(), rendered, "input {input:?}");
            assert_eq!(sel.is_empty(), want.is_empty(), "input {input:?}");
            // the canonical form re-parses to the same selector
            let again = LabelSelector::parse(rendered).unwrap();
            assert_eq!(again.to_string(), rendered, "reparse of {rendered:?}");
        }
    }

    #[test]
    fn parse_is_deterministic() {
        let a = LabelSelector::parse("x=a,a=x").unwrap();
        let b = LabelSelector::parse("a=x,x=a").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "a=x,x=a");
    }

    #[test]
    fn parse_errors_carry_apimachinery_text() {
        let long_value = "a".repeat(64);
        let too_long_input = format!("x={long_value}");
        let too_long_msg = format!(
            "unable to parse requirement: values[0][x]: Invalid value: \"{long_value}\": must be no more than 63 characters"
        );
        let cases: Vec<(&str, String)> = vec![
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'".into(),
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'".into(),
            ),
            (
                "(",
                "found '(', expected: !, identifier, or 'end of string'".into(),
            ),
            (
                ",x,y",
                "found ',', expected: !, identifier, or 'end of string'".into(),
            ),
            (
                "x in a",
                "unable to parse requirement: found 'a' expected: '('".into(),
            ),
            (
                "x in",
                "unable to parse requirement: found '' expected: '('".into(),
            ),
            (
                "a notin(",
                "unable to parse requirement: found '', expected: ',', ')' or identifier".into(),
            ),
            (
                "a in (xyz abc)",
                "unable to parse requirement: found 'abc', expected: ',' or ')'".into(),
            ),
            (
                "a in (x,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier".into(),
            ),
            (
                "a (",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"
                    .into(),
            ),
            (
                "x nott in (y)",
                "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt"
                    .into(),
            ),
            (
                "x!a",
                "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"
                    .into(),
            ),
            (
                "x=(a)",
                "unable to parse requirement: found '(', expected: identifier".into(),
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier".into(),
            ),
            (
                "!,x",
                "unable to parse requirement: found ',', expected: identifier".into(),
            ),
            (
                "x,,y",
                "found ',', expected: identifier after ','".into(),
            ),
            (
                "a in (xyz),",
                "found '', expected: identifier after ','".into(),
            ),
            (
                "a in (xyz)b notin ()",
                "found 'b', expected: ',' or 'end of string'".into(),
            ),
            (
                "x==a==b",
                "found '==', expected: ',' or 'end of string'".into(),
            ),
            (
                "!x=a",
                "found '=', expected: ',' or 'end of string'".into(),
            ),
            (
                "x=a b",
                "found 'b', expected: ',' or 'end of string'".into(),
            ),
            (
                "x=a||y=b",
                format!(
                    "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {VALUE_MSG}"
                ),
            ),
            (
                "x<a",
                "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
            ),
            (
                "x>-1",
                format!(
                    "unable to parse requirement: values[0][x]: Invalid value: \"-1\": {VALUE_MSG}"
                ),
            ),
            (
                "x>a_",
                format!(
                    "unable to parse requirement: [values[0]: Invalid value: \"a_\": for 'Gt', 'Lt' operators, the value must be an integer, values[0][x]: Invalid value: \"a_\": {VALUE_MSG}]"
                ),
            ),
            (
                "a/b/c ?=? def",
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into(),
            ),
            (
                "app: nginx",
                format!("unable to parse requirement: <nil>: Invalid value: \"app:\": {NAME_PART_MSG}"),
            ),
            (
                "example.com/",
                format!(
                    "unable to parse requirement: <nil>: Invalid value: \"example.com/\": name part must be non-empty; {NAME_PART_MSG}"
                ),
            ),
            (
                "Example.com/app=x",
                "unable to parse requirement: <nil>: Invalid value: \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
            ),
            (
                "x\u{b}y",
                format!("unable to parse requirement: <nil>: Invalid value: \"x\\vy\": {NAME_PART_MSG}"),
            ),
            (&too_long_input, too_long_msg),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).expect_err(input);
            assert_eq!(err.to_string(), want, "input {input:?}");
            assert_eq!(err.message(), want, "input {input:?}");
            assert_eq!(input.parse::<LabelSelector>().unwrap_err(), err);
        }
    }

    #[test]
    fn selector_matching_table() {
        type MatchCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool);
        let cases: Vec<MatchCase> = vec![
            ("", vec![("x", "y")], true),
            ("", vec![], true),
            ("x=y", vec![("x", "y")], true),
            ("x==y", vec![("x", "y")], true),
            ("x=y,z=w", vec![("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", vec![("x", "z"), ("z", "a")], true),
            ("notin=in", vec![("notin", "in")], true),
            ("x", vec![("x", "z")], true),
            ("x", vec![("x", "")], true),
            ("!x", vec![("y", "z")], true),
            ("x>1", vec![("x", "2")], true),
            ("x<1", vec![("x", "0")], true),
            ("x<1", vec![("x", "-5")], true),
            ("x>01", vec![("x", "2")], true),
            ("x=z", vec![], false),
            ("x=y", vec![("x", "z")], false),
            ("x=y,z=w", vec![("x", "w"), ("z", "w")], false),
            ("x!=y,z!=w", vec![("x", "z"), ("z", "w")], false),
            ("x", vec![("y", "z")], false),
            ("!x", vec![("x", "z")], false),
            ("x>1", vec![("x", "0")], false),
            ("x>1", vec![("x", "1")], false),
            ("x<1", vec![("x", "2")], false),
            ("x>1", vec![], false),
            ("x<1", vec![], false),
            ("z>1", vec![("z", "v2")], false),
            // != and notin match an absent key
            ("x!=a", vec![], true),
            ("x!=a", vec![("x", "a")], false),
            ("x!=a", vec![("x", "b")], true),
            ("x notin (a)", vec![], true),
            ("x notin (a)", vec![("x", "a")], false),
            ("x notin (a,b)", vec![("x", "c")], true),
            ("x in (a,b)", vec![("x", "b")], true),
            ("x in (a,b)", vec![("x", "c")], false),
            ("x in (a,b)", vec![], false),
            ("x in (a,b),y", vec![("x", "a"), ("y", "")], true),
            ("x in (a,b),y", vec![("x", "a")], false),
            (
                "x in (foo),y notin (alpha)",
                vec![("x", "foo"), ("y", "baz")],
                true,
            ),
            (
                "x in (foo),y in (alpha)",
                vec![("x", "foo"), ("y", "baz")],
                false,
            ),
            ("x notin (),y", vec![("y", "")], true),
            ("!x,y", vec![("y", "")], true),
            ("x notin (),!y", vec![("y", "")], false),
            ("x in ()", vec![("y", "baz")], false),
            ("x in ()", vec![("x", "")], true),
            ("x=", vec![("x", "")], true),
            ("x=", vec![], false),
            ("x=", vec![("x", "a")], false),
            ("foo=bar", vec![("foo", "bar"), ("baz", "blah")], true),
            ("baz=blah", vec![("foo", "bar"), ("baz", "blah")], true),
            (
                "foo=bar,baz=blah",
                vec![("foo", "bar"), ("baz", "blah")],
                true,
            ),
            ("foo=blah", vec![("foo", "bar"), ("baz", "blah")], false),
            ("baz=bar", vec![("foo", "bar"), ("baz", "blah")], false),
            (
                "foo=bar,foobar=bar,baz=blah",
                vec![("foo", "bar"), ("baz", "blah")],
                false,
            ),
            (
                "example.com/app=web",
                vec![("example.com/app", "web")],
                true,
            ),
            ("example.com/app=web", vec![("app", "web")], false),
        ];
        for (selector, set, want) in cases {
            let sel = LabelSelector::parse(selector).unwrap();
            let map = labels(&set);
            assert_eq!(sel.matches(&map), want, "{selector:?} vs {set:?}");
            let json_labels = serde_json::to_value(&map).unwrap();
            assert_eq!(
                sel.matches_json(Some(&json_labels)),
                want,
                "json {selector:?} vs {set:?}"
            );
        }
    }

    #[test]
    fn matches_json_handles_absent_and_odd_labels() {
        let cases: Vec<(&str, Option<Value>, bool)> = vec![
            ("", None, true),
            ("x", None, false),
            ("!x", None, true),
            ("x!=a", None, true),
            ("x notin (a)", Some(Value::Null), true),
            ("x=a", Some(Value::Null), false),
            ("x=a", Some(json!("x=a")), false),
            ("x=a", Some(json!({"x": "a"})), true),
            // non-string label values count as absent
            ("x=1", Some(json!({"x": 1})), false),
            ("x", Some(json!({"x": true})), false),
            ("!x", Some(json!({"x": null})), true),
        ];
        for (selector, value, want) in cases {
            let sel = LabelSelector::parse(selector).unwrap();
            assert_eq!(
                sel.matches_json(value.as_ref()),
                want,
                "{selector:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn requirement_constructor_table() {
        use Operator::*;
        let cases: Vec<(String, Operator, Vec<&str>, bool)> = vec![
            ("x".into(), In, vec![], false),
            ("x".into(), NotIn, vec![], false),
            ("x".into(), In, vec!["foo"], true),
            ("x".into(), NotIn, vec!["foo"], true),
            ("x".into(), Exists, vec![], true),
            ("x".into(), DoesNotExist, vec![], true),
            ("x".into(), Exists, vec!["a"], false),
            ("x".into(), Equals, vec![], false),
            ("x".into(), Equals, vec!["a", "b"], false),
            ("1foo".into(), In, vec!["bar"], true),
            ("1234".into(), In, vec!["bar"], true),
            ("y".into(), GreaterThan, vec!["1"], true),
            ("z".into(), LessThan, vec!["6"], true),
            ("foo".into(), GreaterThan, vec!["bar"], false),
            ("barz".into(), LessThan, vec!["blah"], false),
            ("y".into(), GreaterThan, vec!["1", "2"], false),
            ("a".repeat(254), Exists, vec![], false),
        ];
        for (key, op, values, ok) in cases {
            let values: Vec<String> = values.into_iter().map(String::from).collect();
            let res = Requirement::new(key.clone(), op, values.clone());
            assert_eq!(res.is_ok(), ok, "{key:?} {op} {values:?}: {res:?}");
            if let Ok(r) = res {
                assert_eq!((r.key, r.operator, r.values), (key, op, values));
            }
        }
        assert_eq!(
            Requirement::new("x", In, vec![]).unwrap_err().to_string(),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            Requirement::new("x", Exists, vec!["a<b".into()])
                .unwrap_err()
                .to_string(),
            "[values: Invalid value: [\"a\\u003cb\"]: values set must be empty for exists and does not exist, values[0][x]: Invalid value: \"a<b\": "
                .to_string()
                + VALUE_MSG
                + "]"
        );
        assert_eq!(
            Requirement::new("x", Equals, vec!["a".into(), "b".into()])
                .unwrap_err()
                .to_string(),
            "values: Invalid value: [\"a\",\"b\"]: exact-match compatibility requires one single value"
        );
        assert_eq!(
            Requirement::new("", Exists, vec![])
                .unwrap_err()
                .to_string(),
            format!("key: Invalid value: \"\": name part must be non-empty; {NAME_PART_MSG}")
        );
    }

    #[test]
    fn requirement_and_selector_rendering() {
        use Operator::*;
        let cases: Vec<(Vec<Requirement>, &str)> = vec![
            (
                vec![
                    req("x", In, &["def", "abc"]),
                    req("y", NotIn, &["jkl"]),
                    req("z", Exists, &[]),
                ],
                "x in (abc,def),y notin (jkl),z",
            ),
            (
                vec![
                    req("x", NotIn, &["abc", "def"]),
                    req("y", NotEquals, &["jkl"]),
                    req("z", DoesNotExist, &[]),
                ],
                "x notin (abc,def),y!=jkl,!z",
            ),
            (
                vec![
                    req("x", NotIn, &["abc"]),
                    req("y", In, &["jkl", "mno"]),
                    req("z", NotIn, &[""]),
                ],
                "x notin (abc),y in (jkl,mno),z notin ()",
            ),
            (
                vec![
                    req("x", Equals, &["abc"]),
                    req("y", DoubleEquals, &["jkl"]),
                    req("z", NotEquals, &["a"]),
                    req("z", Exists, &[]),
                ],
                "x=abc,y==jkl,z!=a,z",
            ),
            (
                vec![
                    req("x", GreaterThan, &["2"]),
                    req("y", LessThan, &["8"]),
                    req("z", Exists, &[]),
                ],
                "x>2,y<8,z",
            ),
            // sorted for output but not de-duplicated (safeSort)
            (vec![req("x", In, &["b", "a", "b"])], "x in (a,b,b)"),
            // from_requirements sorts by key
            (vec![req("b", Exists, &[]), req("a", Exists, &[])], "a,b"),
        ];
        for (reqs, want) in cases {
            let sel = LabelSelector::from_requirements(reqs);
            assert_eq!(sel.to_string(), want);
            assert_eq!(sel.to_selector_string(), want);
        }
        assert_eq!(LabelSelector::everything().to_string(), "");
        assert_eq!(LabelSelector::everything().to_selector_string(), "<none>");
        assert_eq!(Operator::NotIn.to_string(), "notin");
        assert_eq!(Operator::GreaterThan.as_str(), "gt");
    }

    #[test]
    fn requires_exact_match() {
        let cases: Vec<(&str, &str, Option<&str>)> = vec![
            ("x=a", "x", Some("a")),
            ("x==a", "x", Some("a")),
            ("x in (a)", "x", Some("a")),
            ("x in (a,b)", "x", None),
            ("x!=a", "x", None),
            ("x", "x", None),
            ("y=a", "x", None),
            ("", "x", None),
        ];
        for (selector, key, want) in cases {
            let sel = LabelSelector::parse(selector).unwrap();
            assert_eq!(sel.requires_exact_match(key), want, "{selector:?} {key}");
        }
    }

    #[test]
    fn from_label_selector_json_table() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({}), "", "<none>"),
            (
                json!({"matchLabels": null, "matchExpressions": null}),
                "",
                "<none>",
            ),
            (
                json!({"matchLabels": {}, "matchExpressions": []}),
                "",
                "<none>",
            ),
            (json!({"matchLabels": {"app": "web"}}), "app=web", "app=web"),
            (
                json!({"matchLabels": {"tier": "db", "app": "web"}}),
                "app=web,tier=db",
                "app=web,tier=db",
            ),
            (
                json!({
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]
                }),
                "app=web,tier in (a,b)",
                "app=web,tier in (a,b)",
            ),
            (
                json!({"matchExpressions": [
                    {"key": "z", "operator": "DoesNotExist"},
                    {"key": "y", "operator": "Exists", "values": []},
                    {"key": "x", "operator": "NotIn", "values": ["a"]}
                ]}),
                "x notin (a),y,!z",
                "x notin (a),y,!z",
            ),
            (
                json!({
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]
                }),
                "app=web,app in (api,web)",
                "app=web,app in (api,web)",
            ),
            (
                json!({"matchLabels": {"example.com/app": ""}}),
                "example.com/app=",
                "example.com/app=",
            ),
        ];
        for (value, display, formatted) in cases {
            let sel = LabelSelector::from_label_selector_json(&value)
                .unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(sel.to_string(), display, "{value}");
            assert_eq!(sel.to_selector_string(), formatted, "{value}");
        }
        // values keep the object's order, as LabelSelectorAsSelector does
        let sel = LabelSelector::from_label_selector_json(
            &json!({"matchExpressions": [{"key": "t", "operator": "In", "values": ["b", "a"]}]}),
        )
        .unwrap();
        assert_eq!(sel.requirements(), &[req("t", Operator::In, &["b", "a"])]);
    }

    #[test]
    fn from_label_selector_json_matching() {
        let sel = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        let cases: Vec<(Value, bool)> = vec![
            (json!({"app": "web", "tier": "a"}), true),
            (json!({"app": "web", "tier": "b", "other": "x"}), true),
            (json!({"app": "web", "tier": "c"}), false),
            (json!({"app": "web"}), false),
            (json!({"app": "web", "tier": "a", "canary": "true"}), false),
            (json!({"app": "api", "tier": "a"}), false),
        ];
        for (labels, want) in cases {
            assert_eq!(sel.matches_json(Some(&labels)), want, "{labels}");
        }
        let everything = LabelSelector::from_label_selector_json(&json!({})).unwrap();
        assert!(everything.is_empty());
        assert!(everything.matches_json(None));
    }

    #[test]
    fn from_label_selector_json_errors() {
        let cases: Vec<(Value, String)> = vec![
            (
                Value::Null,
                "invalid label selector: expected an object, got null".into(),
            ),
            (
                json!("app=web"),
                "invalid label selector: expected an object, got string".into(),
            ),
            (
                json!({"matchLabels": ["a"]}),
                "invalid label selector: matchLabels must be an object, got array".into(),
            ),
            (
                json!({"matchLabels": {"a": 1}}),
                "invalid label selector: matchLabels[a] must be a string, got number".into(),
            ),
            (
                json!({"matchExpressions": {}}),
                "invalid label selector: matchExpressions must be an array, got object".into(),
            ),
            (
                json!({"matchExpressions": [1]}),
                "invalid label selector: matchExpressions[0] must be an object, got number".into(),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}),
                "invalid label selector: matchExpressions[0].values must contain only strings, got number".into(),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}),
                "\"Gt\" is not a valid pod selector operator".into(),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["1"]}]}),
                "\"in\" is not a valid pod selector operator".into(),
            ),
            (
                json!({"matchExpressions": [{"key": "a"}]}),
                "\"\" is not a valid pod selector operator".into(),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty".into(),
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist".into(),
            ),
            (
                json!({"matchLabels": {"a b": "x"}}),
                format!("key: Invalid value: \"a b\": {NAME_PART_MSG}"),
            ),
            (
                json!({"matchLabels": {"app": "-x"}}),
                format!("values[0][app]: Invalid value: \"-x\": {VALUE_MSG}"),
            ),
        ];
        for (value, want) in cases {
            let err =
                LabelSelector::from_label_selector_json(&value).expect_err(&value.to_string());
            assert_eq!(err.to_string(), want, "{value}");
        }
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        let cases = [
            ("abc", "\"abc\""),
            ("a\"b", "\"a\\\"b\""),
            ("a\\b", "\"a\\\\b\""),
            ("\u{1}", "\"\\x01\""),
            ("\u{7f}", "\"\\x7f\""),
            ("\u{85}", "\"\\u0085\""),
            ("\u{a0}", "\"\\u00a0\""),
            ("é", "\"é\""),
            ("a b", "\"a b\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_quote(input), want, "{input:?}");
        }
    }
}
