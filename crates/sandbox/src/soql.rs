//! The sandbox's SOQL: a reader and evaluator for the statements a proxy sends to read and search
//! ServiceAppointment records, and nothing more. Anything else is refused with Salesforce's
//! `MALFORMED_QUERY`, so a proxy that builds a query the sandbox does not know learns it here.
//!
//! What it reads (keywords in any case, as SOQL's are):
//!
//! ```text
//! SELECT item, … FROM ServiceAppointment [WHERE cond AND …] [ORDER BY path [ASC|DESC], …] [LIMIT n]
//! SELECT COUNT() FROM ServiceAppointment [WHERE …]
//! item  = path | (SELECT path, … FROM CarePractnFacilityAppts)
//! cond  = path op literal | path [NOT] IN (literal, …)
//!       | Id IN (SELECT ServiceAppointmentId FROM CarePractnFacilityAppt WHERE cond AND …)
//!       | (cond OR cond …)
//! op    = = != < <= > >= LIKE
//! ```
//!
//! String literals are single-quoted with the documented escapes (`\'`, `\"`, `\\`, `\n`, `\r`,
//! `\t`, `\b`, `\f`, and `\%` `\_` inside LIKE only); any other backslash is an error, as it is in
//! Salesforce. Datetime literals are unquoted (`2025-07-21T09:00:00Z`), and can only be compared
//! with datetime fields. Semi-joins follow the documented limits: at most two, AND-ed only.

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

/// A statement read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// What is selected; empty for `COUNT()`.
    pub select: Vec<Item>,
    /// `SELECT COUNT()`.
    pub count: bool,
    /// The main object.
    pub from: String,
    /// Conditions, all of which must hold.
    pub conditions: Vec<Condition>,
    /// Sort keys, in order: path and whether descending.
    pub order_by: Vec<(String, bool)>,
    /// `LIMIT`.
    pub limit: Option<usize>,
}

/// One selected item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// A field or a parent's field (`HealthcarePractitionerFacility.AccountId`).
    Field(String),
    /// A parent-to-child subquery: the relationship name and its fields.
    Children {
        relationship: String,
        fields: Vec<String>,
    },
}

/// One condition of a WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Condition {
    Compare {
        path: String,
        op: Op,
        value: Literal,
    },
    In {
        path: String,
        negated: bool,
        values: Vec<Literal>,
    },
    /// `Id IN (SELECT ServiceAppointmentId FROM <object> WHERE …)`.
    SemiJoin {
        object: String,
        conditions: Vec<Condition>,
    },
    /// A parenthesised group of alternatives.
    Any(Vec<Condition>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Text(String),
    DateTime(DateTime<FixedOffset>),
    Number(f64),
    Bool(bool),
    Null,
}

/// Why a statement was refused: the `MALFORMED_QUERY` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

fn malformed(text: impl Into<String>) -> Malformed {
    Malformed(text.into())
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Symbol(&'static str),
}

/// Splits a statement into words, quoted strings and symbols.
fn tokens(soql: &str) -> Result<Vec<Token>, Malformed> {
    let mut out = Vec::new();
    let mut chars = soql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '\'' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err(malformed("unterminated string literal")),
                        Some((_, '\'')) => break,
                        Some((_, '\\')) => match chars.next().map(|(_, e)| e) {
                            Some('n' | 'N') => text.push('\n'),
                            Some('r' | 'R') => text.push('\r'),
                            Some('t' | 'T') => text.push('\t'),
                            Some('b' | 'B') => text.push('\u{8}'),
                            Some('f' | 'F') => text.push('\u{c}'),
                            Some('"') => text.push('"'),
                            Some('\'') => text.push('\''),
                            Some('\\') => text.push('\\'),
                            // Kept escaped: only LIKE gives these a meaning; elsewhere they are
                            // refused when the literal is used.
                            Some('%') => text.push_str("\\%"),
                            Some('_') => text.push_str("\\_"),
                            _ => return Err(malformed("invalid escape sequence in a string")),
                        },
                        Some((_, c)) => text.push(c),
                    }
                }
                out.push(Token::Text(text));
            }
            '(' | ')' | ',' | '=' => out.push(Token::Symbol(match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                _ => "=",
            })),
            '!' | '<' | '>' => {
                let next_is_eq = chars.peek().is_some_and(|(_, n)| *n == '=');
                if next_is_eq {
                    chars.next();
                }
                out.push(Token::Symbol(match (c, next_is_eq) {
                    ('!', true) => "!=",
                    ('<', true) => "<=",
                    ('>', true) => ">=",
                    ('<', false) => "<",
                    ('>', false) => ">",
                    _ => return Err(malformed(format!("unexpected token at {at}: '!'"))),
                }));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut word = String::from(c);
                while let Some((_, n)) = chars.peek() {
                    if n.is_ascii_alphanumeric() || "_.:+-".contains(*n) {
                        word.push(*n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(word));
            }
            other => return Err(malformed(format!("unexpected token: '{other}'"))),
        }
    }
    Ok(out)
}

struct Reader {
    tokens: Vec<Token>,
    at: usize,
}

impl Reader {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), Malformed> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(malformed(format!("expecting {word}")))
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), Malformed> {
        if self.symbol(symbol) {
            Ok(())
        } else {
            Err(malformed(format!("expecting '{symbol}'")))
        }
    }

    fn path(&mut self) -> Result<String, Malformed> {
        match self.next() {
            Some(Token::Word(w))
                if w.split('.').all(|part| {
                    !part.is_empty()
                        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !part.starts_with(|c: char| c.is_ascii_digit())
                }) && !is_reserved(&w) =>
            {
                Ok(w)
            }
            _ => Err(malformed("expecting a field name")),
        }
    }
}

const RESERVED: [&str; 14] = [
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "LIMIT", "ASC", "DESC",
    "LIKE", "NULL",
];

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(word))
}

/// Reads a statement.
pub(crate) fn parse(soql: &str) -> Result<Query, Malformed> {
    let mut r = Reader {
        tokens: tokens(soql)?,
        at: 0,
    };
    r.expect_keyword("SELECT")?;
    let mut select = Vec::new();
    let mut count = false;
    if r.keyword("COUNT") {
        r.expect_symbol("(")?;
        r.expect_symbol(")")?;
        count = true;
    } else {
        loop {
            if r.symbol("(") {
                r.expect_keyword("SELECT")?;
                let fields = path_list(&mut r)?;
                r.expect_keyword("FROM")?;
                let relationship = r.path()?;
                r.expect_symbol(")")?;
                select.push(Item::Children {
                    relationship,
                    fields,
                });
            } else {
                select.push(Item::Field(r.path()?));
            }
            if !r.symbol(",") {
                break;
            }
        }
    }
    r.expect_keyword("FROM")?;
    let from = r.path()?;
    let mut conditions = Vec::new();
    if r.keyword("WHERE") {
        conditions = condition_list(&mut r, true)?;
    }
    let semi_joins = conditions
        .iter()
        .filter(|c| matches!(c, Condition::SemiJoin { .. }))
        .count();
    if semi_joins > 2 {
        return Err(malformed(
            "maximum 2 semi join sub-selects are allowed per WHERE clause",
        ));
    }
    let mut order_by = Vec::new();
    if r.keyword("ORDER") {
        r.expect_keyword("BY")?;
        loop {
            let path = r.path()?;
            let descending = if r.keyword("DESC") {
                true
            } else {
                r.keyword("ASC");
                false
            };
            order_by.push((path, descending));
            if !r.symbol(",") {
                break;
            }
        }
    }
    let mut limit = None;
    if r.keyword("LIMIT") {
        match r.next() {
            Some(Token::Word(n)) if n.bytes().all(|b| b.is_ascii_digit()) => {
                limit = Some(n.parse().map_err(|_| malformed("LIMIT out of range"))?);
            }
            _ => return Err(malformed("expecting a number after LIMIT")),
        }
    }
    if r.peek().is_some() {
        return Err(malformed("unexpected token after the end of the statement"));
    }
    if count && !order_by.is_empty() {
        return Err(malformed("ORDER BY is not allowed with COUNT()"));
    }
    Ok(Query {
        select,
        count,
        from,
        conditions,
        order_by,
        limit,
    })
}

fn path_list(r: &mut Reader) -> Result<Vec<String>, Malformed> {
    let mut paths = vec![r.path()?];
    while r.symbol(",") {
        paths.push(r.path()?);
    }
    Ok(paths)
}

/// `cond AND cond …`; semi-joins only where `semi_joins` allows (the main WHERE).
fn condition_list(r: &mut Reader, semi_joins: bool) -> Result<Vec<Condition>, Malformed> {
    let mut conditions = vec![condition(r, semi_joins)?];
    while r.keyword("AND") {
        conditions.push(condition(r, semi_joins)?);
    }
    if matches!(r.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR")) {
        return Err(malformed(
            "mixing AND and OR requires parentheses around the OR",
        ));
    }
    Ok(conditions)
}

fn condition(r: &mut Reader, semi_joins: bool) -> Result<Condition, Malformed> {
    if r.symbol("(") {
        let mut alternatives = vec![condition(r, false)?];
        while r.keyword("OR") {
            alternatives.push(condition(r, false)?);
        }
        r.expect_symbol(")")?;
        return Ok(Condition::Any(alternatives));
    }
    let path = r.path()?;
    let negated = r.keyword("NOT");
    if r.keyword("IN") {
        r.expect_symbol("(")?;
        if r.keyword("SELECT") {
            if !semi_joins || negated || !path.eq_ignore_ascii_case("Id") {
                return Err(malformed(
                    "semi join sub-selects are only allowed as 'Id IN (SELECT …)' in the \
                     main WHERE clause, AND-ed, never with OR",
                ));
            }
            let selected = r.path()?;
            if !selected.eq_ignore_ascii_case("ServiceAppointmentId") {
                return Err(malformed(
                    "the sub-select must select a field referencing ServiceAppointment",
                ));
            }
            r.expect_keyword("FROM")?;
            let object = r.path()?;
            r.expect_keyword("WHERE")?;
            let conditions = condition_list(r, false)?;
            r.expect_symbol(")")?;
            return Ok(Condition::SemiJoin { object, conditions });
        }
        let mut values = vec![literal(r)?];
        while r.symbol(",") {
            values.push(literal(r)?);
        }
        r.expect_symbol(")")?;
        return Ok(Condition::In {
            path,
            negated,
            values,
        });
    }
    if negated {
        return Err(malformed("expecting IN after NOT"));
    }
    let op = match r.next() {
        Some(Token::Symbol("=")) => Op::Eq,
        Some(Token::Symbol("!=")) => Op::Ne,
        Some(Token::Symbol("<")) => Op::Lt,
        Some(Token::Symbol("<=")) => Op::Le,
        Some(Token::Symbol(">")) => Op::Gt,
        Some(Token::Symbol(">=")) => Op::Ge,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("LIKE") => Op::Like,
        _ => return Err(malformed("expecting a comparison operator")),
    };
    let value = literal(r)?;
    if let Literal::Text(text) = &value
        && op != Op::Like
        && (text.contains("\\%") || text.contains("\\_"))
    {
        return Err(malformed(
            "\\% and \\_ are only allowed in a LIKE expression",
        ));
    }
    Ok(Condition::Compare { path, op, value })
}

fn literal(r: &mut Reader) -> Result<Literal, Malformed> {
    match r.next() {
        Some(Token::Text(text)) => Ok(Literal::Text(text)),
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("NULL") => Ok(Literal::Null),
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("TRUE") => Ok(Literal::Bool(true)),
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("FALSE") => Ok(Literal::Bool(false)),
        Some(Token::Word(w)) if w.contains('T') && w.len() >= 20 => {
            DateTime::parse_from_rfc3339(&w)
                .map(Literal::DateTime)
                .map_err(|_| malformed(format!("invalid date/time literal: {w}")))
        }
        Some(Token::Word(w)) => w
            .parse::<f64>()
            .map(Literal::Number)
            .map_err(|_| malformed(format!("unexpected token: '{w}'"))),
        _ => Err(malformed("expecting a value")),
    }
}

/// A record as the evaluator sees it: field (or `Parent.Field`) → value.
pub(crate) trait Fields {
    fn field(&self, path: &str) -> Option<Value>;
}

/// Answers a semi-join (its object and conditions) for the record being matched.
pub(crate) type SemiJoin<'a> = &'a dyn Fn(&str, &[Condition]) -> Result<bool, Malformed>;

/// Whether `record` meets every condition; `semi_join` answers a semi-join for this record.
pub(crate) fn matches(
    conditions: &[Condition],
    record: &dyn Fields,
    semi_join: SemiJoin<'_>,
) -> Result<bool, Malformed> {
    for condition in conditions {
        if !holds(condition, record, semi_join)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn holds(
    condition: &Condition,
    record: &dyn Fields,
    semi_join: SemiJoin<'_>,
) -> Result<bool, Malformed> {
    match condition {
        Condition::Compare { path, op, value } => {
            let field = record.field(path).unwrap_or(Value::Null);
            compare(&field, *op, value)
        }
        Condition::In {
            path,
            negated,
            values,
        } => {
            let field = record.field(path).unwrap_or(Value::Null);
            let mut found = false;
            for value in values {
                if compare(&field, Op::Eq, value)? {
                    found = true;
                }
            }
            Ok(found != *negated)
        }
        Condition::SemiJoin { object, conditions } => semi_join(object, conditions),
        Condition::Any(alternatives) => {
            for alternative in alternatives {
                if holds(alternative, record, semi_join)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// Reads a datetime as Salesforce answers it (`2023-03-13T17:31:23.000+0000`) or as RFC 3339.
pub(crate) fn read_datetime(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(text))
        .ok()
}

fn compare(field: &Value, op: Op, value: &Literal) -> Result<bool, Malformed> {
    let ordering = match (field, value) {
        (Value::Null, Literal::Null) => Some(Ordering::Equal),
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::String(text), Literal::DateTime(when)) => {
            let stored = read_datetime(text).ok_or_else(|| {
                malformed("a date/time literal can only be compared with a date/time field")
            })?;
            Some(stored.cmp(when))
        }
        (Value::String(text), Literal::Text(literal)) => {
            if op == Op::Like {
                return Ok(like(text, literal));
            }
            // Case-insensitive, as `=` is for fields that are not unique case-sensitive.
            Some(text.to_lowercase().cmp(&literal.to_lowercase()))
        }
        (Value::Bool(b), Literal::Bool(l)) => Some(b.cmp(l)),
        (Value::Number(n), Literal::Number(l)) => n.as_f64().and_then(|n| n.partial_cmp(l)),
        _ => {
            return Err(malformed(
                "value of filter criterion is not of the field's type",
            ));
        }
    };
    Ok(match (op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Like, Some(_)) => false,
    })
}

/// SOQL LIKE: `%` any run, `_` one character, `\%` `\_` literal; case-insensitive.
fn like(text: &str, pattern: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Char(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        parts.push(match c {
            '%' => P::Any,
            '_' => P::One,
            '\\' => P::Char(chars.next().unwrap_or('\\')),
            c => P::Char(c),
        });
    }
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // Linear-space dynamic programming over (pattern position, text position).
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for part in parts {
        let mut next = vec![false; text.len() + 1];
        for i in 0..=text.len() {
            if !reachable[i] {
                continue;
            }
            match part {
                P::Any => {
                    for slot in next.iter_mut().skip(i) {
                        *slot = true;
                    }
                    break;
                }
                P::One => {
                    if i < text.len() {
                        next[i + 1] = true;
                    }
                }
                P::Char(c) => {
                    if i < text.len() && c.to_lowercase().eq(text[i].to_lowercase()) {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

/// Orders two records by the sort keys; nulls first, as SOQL's default is.
pub(crate) fn order(a: &dyn Fields, b: &dyn Fields, keys: &[(String, bool)]) -> Ordering {
    for (path, descending) in keys {
        let (x, y) = (
            a.field(path).unwrap_or(Value::Null),
            b.field(path).unwrap_or(Value::Null),
        );
        let ordering = match (&x, &y) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            (Value::String(x), Value::String(y)) => match (read_datetime(x), read_datetime(y)) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => x.cmp(y),
            },
            (Value::Number(x), Value::Number(y)) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        };
        let ordering = if *descending {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}
